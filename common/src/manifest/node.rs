//! A YAML document as a tree of values that remember where they were written.
//!
//! Manifests are first read into this tree (through serde-saphyr, which keeps
//! line and column through serde) and only then checked against the schema by
//! hand. Doing the checking ourselves is what lets `tend check` report every
//! error of a file in one run, point at the exact key, and suggest the key the
//! author probably meant, instead of stopping at serde's first complaint.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    fn from_location(loc: &serde_saphyr::Location) -> Self {
        Self {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            col: u32::try_from(loc.column()).unwrap_or(u32::MAX),
        }
    }
}

/// A value and the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; duplicate keys are rejected by the parser.
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// The name of this kind of value, as a manifest author would say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// Converts to JSON, the data model templates are rendered with.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.name.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            pos: Pos::from_location(&spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyName>>()? {
            let value = map.next_value::<Node>()?;
            let key = Key {
                name: key.value.0,
                pos: Pos::from_location(&key.referenced),
            };
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key: any scalar, kept as the text it was written as.
struct KeyName(String);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyName, E> {
                Ok(KeyName(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyName, E> {
                Ok(KeyName("null".to_owned()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

/// Options for reading manifests: duplicate keys are an error, and only
/// `true`/`false` are booleans (so `enabled: yes` is caught, not guessed).
///
/// The parser's limits guard against alias bombs and runaway nesting. Those
/// that an honest file reaches by being large (nodes, events, scalar bytes,
/// anchors, aliases and what they expand to) grow with the size of the file,
/// so a role of 100,000 resources loads, while aliases can never expand a
/// small file into a huge tree. `TEND_YAML_LIMITS=N` multiplies every limit.
pub fn parse_options(input_len: usize) -> serde_saphyr::Options {
    let factor = limit_factor();
    let scaled = |floor: usize, per_byte: usize| {
        floor
            .max(input_len.saturating_mul(per_byte))
            .saturating_mul(factor)
    };
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = scaled(budget.max_nodes, 1);
    budget.max_events = scaled(budget.max_events, 3);
    budget.max_total_scalar_bytes = scaled(budget.max_total_scalar_bytes, 1);
    budget.max_aliases = scaled(budget.max_aliases, 1);
    budget.max_anchors = scaled(budget.max_anchors, 1);
    budget.max_merge_keys = scaled(budget.max_merge_keys, 1);
    budget.max_recorded_anchor_events = scaled(budget.max_recorded_anchor_events, 4);
    budget.max_recorded_anchor_bytes = scaled(budget.max_recorded_anchor_bytes, 4);
    budget.max_depth = budget.max_depth.saturating_mul(factor);
    budget.max_documents = budget.max_documents.saturating_mul(factor);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events =
        scaled(options.alias_limits.max_total_replayed_events, 4);
    options.alias_limits.max_replay_stack_depth = options
        .alias_limits
        .max_replay_stack_depth
        .saturating_mul(factor);
    options.strict_booleans = true;
    options.with_snippet = false;
    options
}

/// The largest manifest file read: 64 MiB (times `TEND_YAML_LIMITS`).
/// A role of 100,000 inline files is 56 MB.
pub fn max_file_bytes() -> u64 {
    (64u64 << 20).saturating_mul(limit_factor() as u64)
}

/// `TEND_YAML_LIMITS`, or 1.
pub fn limit_factor() -> usize {
    std::env::var("TEND_YAML_LIMITS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// When a parse error is a limit reached: which limit, and its value.
pub fn limit_reached(e: &serde_saphyr::Error, input_len: usize) -> Option<(String, usize)> {
    use serde_saphyr::budget::BudgetBreach as B;
    let options = parse_options(input_len);
    let budget = options.budget.as_ref()?;
    let mut e = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = e
    {
        e = error;
    }
    let (what, limit) = match e {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            B::Nodes { .. } => ("values, lists and mappings", budget.max_nodes),
            B::Events { .. } => ("parser events", budget.max_events),
            B::ScalarBytes { .. } => ("bytes of text in values", budget.max_total_scalar_bytes),
            B::Aliases { .. } => ("aliases (`*name`)", budget.max_aliases),
            B::Anchors { .. } => ("anchors (`&name`)", budget.max_anchors),
            B::MergeKeys { .. } => ("merge keys (`<<`)", budget.max_merge_keys),
            B::Depth { .. } => ("levels of nesting", budget.max_depth),
            B::Documents { .. } => ("documents", budget.max_documents),
            B::RecordedAnchorEvents { .. } => {
                ("events kept for anchors", budget.max_recorded_anchor_events)
            }
            B::RecordedAnchorBytes { .. } => {
                ("bytes kept for anchors", budget.max_recorded_anchor_bytes)
            }
            B::AliasAnchorRatio { .. } => {
                ("aliases per anchor", budget.alias_anchor_ratio_multiplier)
            }
            _ => return None,
        },
        serde_saphyr::Error::AliasReplayLimitExceeded {
            max_total_replayed_events,
            ..
        } => ("events expanded from aliases", *max_total_replayed_events),
        serde_saphyr::Error::AliasReplayStackDepthExceeded { max_depth, .. } => {
            ("levels of aliases within aliases", *max_depth)
        }
        _ => return None,
    };
    Some((what.to_owned(), limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let text = "a: 1\nlist:\n  - x: \"s\"\n    y: [1, true]\n";
        let node: Node =
            serde_saphyr::from_str_with_options(text, parse_options(text.len())).unwrap();
        let map = node.as_map().unwrap();
        assert_eq!(map[0].0.name, "a");
        assert_eq!(map[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(map[0].1.pos, Pos { line: 1, col: 4 });
        let item = &node.get("list").unwrap().as_seq().unwrap()[0];
        assert_eq!(item.pos.line, 3);
        let (ykey, yval) = &item.as_map().unwrap()[1];
        assert_eq!(ykey.pos, Pos { line: 4, col: 5 });
        assert_eq!(yval.as_seq().unwrap()[1].value, Value::Bool(true));
        assert_eq!(yval.as_seq().unwrap()[1].pos, Pos { line: 4, col: 12 });
    }

    #[test]
    fn duplicate_keys_and_yes_are_not_silently_accepted() {
        let dup: Result<Node, _> =
            serde_saphyr::from_str_with_options("a: 1\na: 2\n", parse_options(10));
        assert!(dup.is_err());
        let yes: Node = serde_saphyr::from_str_with_options("a: yes\n", parse_options(7)).unwrap();
        assert_eq!(yes.get("a").unwrap().value, Value::Str("yes".into()));
    }
}
