//! JSON Schemas of role and environment files, for editors (through
//! `# yaml-language-server: $schema=…`): made from the same tables of keys,
//! resource types and attributes the checker reads, so they cannot drift
//! from it. `schema/*.schema.json` are these, written out; a test keeps
//! them equal.

use serde_json::{Value, json};

use super::environment::{ENV_KEYS, HALT_KEYS, HOST_KEYS, ROLLOUT_KEYS};
use super::kinds::{AttrType, COMMON_ATTRIBUTES, Kind};
use super::role::ROLE_KEYS;

/// Where the committed schemas are, from the repository's root.
pub const ROLE_FILE: &str = "schema/role.schema.json";
pub const ENVIRONMENT_FILE: &str = "schema/environment.schema.json";

/// A scalar written in YAML: a template string, or a number or boolean
/// that the manifest means as text.
fn scalar() -> Value {
    json!({"type": ["string", "number", "boolean"]})
}

fn vars() -> Value {
    json!({"type": "object", "description": "template variables: name → value"})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn attribute(ty: AttrType) -> Value {
    match ty {
        AttrType::Str => scalar(),
        AttrType::Bool => json!({"type": "boolean"}),
        AttrType::Mode => json!({"type": "string", "pattern": "^[0-7]{3,4}$",
                                 "description": "an octal mode, quoted: \"0644\""}),
        AttrType::Refs => json!({"anyOf": [{"type": "string"}, strings()],
                                 "description": "resource identities, type:name"}),
        AttrType::List => json!({"anyOf": [{"type": "string"}, strings()]}),
        AttrType::Int => json!({"type": "integer", "minimum": 0}),
        AttrType::Vars => vars(),
        AttrType::OneOf(words) => json!({"enum": words}),
        AttrType::When => json!({"type": "object", "required": ["flag"],
                                 "properties": {"flag": {"type": "string"}},
                                 "additionalProperties": false}),
    }
}

/// One entry of `resources:`: exactly one type key, and that type's
/// attributes.
fn resource(kind: Kind) -> Value {
    let mut properties = serde_json::Map::new();
    properties.insert(
        kind.name().to_owned(),
        json!({"type": "string", "description": format!("the {kind}'s name (a template)")}),
    );
    for a in kind.attributes().iter().chain(COMMON_ATTRIBUTES) {
        properties.insert(a.name.to_owned(), attribute(a.ty));
    }
    json!({
        "title": kind.name(),
        "type": "object",
        "required": [kind.name()],
        "properties": properties,
        "additionalProperties": false
    })
}

fn only(keys: &[&str], mut properties: serde_json::Map<String, Value>) -> Value {
    // Every key the checker takes, described or not.
    for k in keys {
        properties.entry(*k).or_insert(json!({}));
    }
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

fn map(entries: Value) -> serde_json::Map<String, Value> {
    entries.as_object().cloned().unwrap_or_default()
}

/// The schema of `roles/<name>/role.yaml`.
pub fn role() -> Value {
    let resources: Vec<Value> = Kind::ALL.into_iter().map(resource).collect();
    let mut schema = only(
        ROLE_KEYS,
        map(json!({
            "description": {"type": "string"},
            "include": strings(),
            "vars": vars(),
            "resources": {"type": "array", "items": {"oneOf": resources}}
        })),
    );
    schema["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    schema["title"] = json!("tend role (roles/<name>/role.yaml)");
    schema
}

/// The schema of `manifests/<env>.yaml`.
pub fn environment() -> Value {
    let flag = json!({"anyOf": [
        {"type": "boolean"},
        {"type": "object", "required": ["percent"], "additionalProperties": false,
         "properties": {"percent": {"type": "number", "minimum": 0, "maximum": 100}}},
        {"type": "object", "required": ["hosts"], "additionalProperties": false,
         "properties": {"hosts": strings()}}
    ]});
    let host = {
        let mut h = only(
            HOST_KEYS,
            map(
                json!({"match": {"type": "string", "description": "a glob on the host name"},
                       "roles": strings(), "vars": vars()}),
            ),
        );
        h["required"] = json!(["match", "roles"]);
        h
    };
    let duration = json!({"type": "string", "description": "e.g. 30s, 10m, 1h"});
    let halt = only(
        HALT_KEYS,
        HALT_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), json!({"type": "integer", "minimum": 0})))
            .collect(),
    );
    let rollout = only(
        ROLLOUT_KEYS,
        map(json!({
            "canary": strings(),
            "waves": {"type": "array", "minItems": 1,
                      "items": {"anyOf": [{"type": "string", "pattern": "^[0-9.]+%$"},
                                          {"type": "integer", "minimum": 1}]}},
            "soak": duration,
            "deadline": duration,
            "halt_on": halt,
            "on_halt": {"enum": ["hold", "rollback"]}
        })),
    );
    let mut schema = only(
        ENV_KEYS,
        map(json!({
            "environment": {"type": "string"},
            "vars": vars(),
            "hosts": {"type": "array", "items": host},
            "rollout": rollout,
            "flags": {"type": "object", "additionalProperties": flag}
        })),
    );
    schema["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    schema["title"] = json!("tend environment (manifests/<env>.yaml)");
    schema
}

/// A schema as it is committed: pretty JSON and a final newline.
pub fn text(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("a schema is JSON");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's root: this crate is `common/` in it.
    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("common/ is inside the repository")
            .to_path_buf()
    }

    /// The committed schemas are the checker's tables as they are now. To
    /// update them: `TEND_WRITE_SCHEMA=1 cargo test -p tend-common --lib json_schema`.
    #[test]
    fn the_committed_schemas_match_the_checker() {
        for (file, schema) in [(ROLE_FILE, role()), (ENVIRONMENT_FILE, environment())] {
            let path = root().join(file);
            let want = text(&schema);
            if std::env::var_os("TEND_WRITE_SCHEMA").is_some() {
                fs_err::create_dir_all(path.parent().unwrap()).unwrap();
                fs_err::write(&path, &want).unwrap();
            }
            let have = fs_err::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{file} is out of date with the checker: run `TEND_WRITE_SCHEMA=1 cargo test -p tend-common --lib json_schema` and commit it"
            );
        }
    }

    /// Every resource type and attribute the checker takes is in the
    /// schema, and nothing else is.
    #[test]
    fn each_resource_type_takes_what_the_checker_takes() {
        let schema = role();
        let kinds = schema["properties"]["resources"]["items"]["oneOf"]
            .as_array()
            .unwrap();
        assert_eq!(kinds.len(), Kind::ALL.len());
        for (kind, entry) in Kind::ALL.into_iter().zip(kinds) {
            let mut keys: Vec<&str> = entry["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut want: Vec<&str> = kind
                .attributes()
                .iter()
                .chain(COMMON_ATTRIBUTES)
                .map(|a| a.name)
                .chain([kind.name()])
                .collect();
            keys.sort_unstable();
            want.sort_unstable();
            assert_eq!(keys, want, "{kind}");
        }
    }

    /// The example repository uses only what the schemas allow (keys and
    /// resource types), and each file names its schema for editors.
    #[test]
    fn the_example_files_name_their_schema_and_keep_to_it() {
        let role_schema = role();
        let roles = fs_err::read_dir(root().join("roles")).unwrap();
        let mut checked = 0;
        for entry in roles {
            let file = entry.unwrap().path().join("role.yaml");
            let text = fs_err::read_to_string(&file).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema=../../schema/role.schema.json\n"),
                "{}",
                file.display()
            );
            let doc: Value = serde_saphyr::from_str(&text).unwrap();
            for key in doc.as_object().unwrap().keys() {
                assert!(role_schema["properties"].get(key).is_some(), "{key}");
            }
            for r in doc["resources"].as_array().into_iter().flatten() {
                let entries = role_schema["properties"]["resources"]["items"]["oneOf"]
                    .as_array()
                    .unwrap();
                let fits = entries.iter().any(|e| {
                    let allowed = e["properties"].as_object().unwrap();
                    let required = e["required"][0].as_str().unwrap();
                    r.get(required).is_some()
                        && r.as_object()
                            .unwrap()
                            .keys()
                            .all(|k| allowed.contains_key(k))
                });
                assert!(fits, "{}: {r}", file.display());
                checked += 1;
            }
        }
        assert!(checked > 10);
        for entry in fs_err::read_dir(root().join("manifests")).unwrap() {
            let file = entry.unwrap().path();
            let text = fs_err::read_to_string(&file).unwrap();
            assert!(
                text.starts_with(
                    "# yaml-language-server: $schema=../schema/environment.schema.json\n"
                ),
                "{}",
                file.display()
            );
            let doc: Value = serde_saphyr::from_str(&text).unwrap();
            let env_schema = environment();
            for key in doc.as_object().unwrap().keys() {
                assert!(env_schema["properties"].get(key).is_some(), "{key}");
            }
        }
    }
}
