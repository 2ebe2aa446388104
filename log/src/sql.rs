//! The small SQL interface written once for both stores: the rollout
//! gate and the identities run their transactions through it. The layer
//! every other part of the log's storage builds on; it imports none of them.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(String),
    #[error("{0}")]
    Closed(&'static str),
}

/// A value a query filters on.
pub enum Param {
    Text(String),
    Int(i64),
    /// A value that may be NULL (typed, as PostgreSQL wants it).
    OptText(Option<String>),
    OptInt(Option<i64>),
}

/// A value read back.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(n) => *n,
            _ => 0,
        }
    }
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            _ => None,
        }
    }
    pub fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Null => String::new(),
        }
    }
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Cell::Text(t) if !t.is_empty() => Some(t.clone()),
            _ => None,
        }
    }
}

/// What the gate needs of a database, inside one transaction. SQL is
/// written with `$1` placeholders and integer (not boolean) columns, which
/// both stores read alike.
pub trait Sql {
    fn exec(&mut self, sql: &str, args: &[Param]) -> Result<u64, StoreError>;
    fn rows(&mut self, sql: &str, args: &[Param]) -> Result<Vec<Vec<Cell>>, StoreError>;
    /// Holds the environment's rollout lock until the transaction ends.
    fn lock_environment(&mut self, environment: &str) -> Result<(), StoreError>;
}
