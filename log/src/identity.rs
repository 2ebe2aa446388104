//! Who may do what at the log (SPEC §6, the trust model), written once for
//! both stores over [`Sql`].
//!
//! A token is a host's (bound to its name and environment: it may report
//! and ask the rollout gate for that host in that environment only), a
//! viewer's (reads) or an operator's (reads, resume, abort). Only the
//! sha256 of a token is kept; a token is found by the first 16 hex digits
//! of its digest and then compared whole in constant time, so how long a
//! lookup takes says nothing of how much of a guess was right.
//!
//! Join tokens let a fleet enroll itself: a host exchanges one, once, for
//! a host token of its own, if its name matches the join token's pattern
//! and the environment is the join token's. A join token never takes a
//! name that has a live host token, unless it was made to let rebuilt
//! hosts enroll again.

use serde::Serialize;
use subtle::ConstantTimeEq as _;

use super::clock::rfc3339;
use super::sql::{Cell, Param, Sql, StoreError};
use super::token_hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Host,
    Viewer,
    Operator,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Viewer => "viewer",
            Kind::Operator => "operator",
        }
    }

    fn parse(word: &str) -> Option<Kind> {
        match word {
            "host" => Some(Kind::Host),
            "viewer" => Some(Kind::Viewer),
            "operator" => Some(Kind::Operator),
            _ => None,
        }
    }
}

/// Whom a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: i64,
    pub kind: Kind,
    pub name: String,
    /// A host's environment (`None` for people, and for a host token made
    /// before tokens were bound to one: such a token is refused).
    pub environment: Option<String>,
}

impl Identity {
    /// May read the log (the API, the dashboard, the metrics).
    pub fn reads(&self) -> bool {
        matches!(self.kind, Kind::Viewer | Kind::Operator)
    }
}

/// Why a token was not taken (each a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("unknown token")]
    Unknown,
    #[error("this token was revoked at {}", rfc3339(*.0))]
    Revoked(i64),
    #[error("this token expired at {}", rfc3339(*.0))]
    Expired(i64),
}

/// The index a digest is found by: its first 16 hex digits.
fn lookup_key(hash: &str) -> String {
    hash.chars().take(16).collect()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The rows whose digest is `token`'s (at most one), by lookup key.
fn matching(
    sql: &mut dyn Sql,
    table_sql: &str,
    token: &str,
) -> Result<Option<Vec<Cell>>, StoreError> {
    let hash = token_hash(token);
    let rows = sql.rows(table_sql, &[Param::Text(lookup_key(&hash))])?;
    // The digest is the last column.
    Ok(rows
        .into_iter()
        .find(|row| row.last().is_some_and(|h| same(&h.text(), &hash))))
}

/// Whom `token` belongs to, at `now`.
pub fn authenticate(
    sql: &mut dyn Sql,
    token: &str,
    now: i64,
) -> Result<Result<Identity, Denied>, StoreError> {
    let Some(row) = matching(
        sql,
        "SELECT id, kind, name, environment, expires_unix, revoked_unix, hash
         FROM identities WHERE lookup = $1",
        token,
    )?
    else {
        return Ok(Err(Denied::Unknown));
    };
    if let Some(revoked) = row[5].opt_int() {
        return Ok(Err(Denied::Revoked(revoked)));
    }
    if let Some(expires) = row[4].opt_int().filter(|e| *e <= now) {
        return Ok(Err(Denied::Expired(expires)));
    }
    let Some(kind) = Kind::parse(&row[1].text()) else {
        return Ok(Err(Denied::Unknown));
    };
    Ok(Ok(Identity {
        id: row[0].int(),
        kind,
        name: row[2].text(),
        environment: row[3].opt_text(),
    }))
}

/// A new secret: 32 random bytes, hexadecimal.
pub fn new_secret() -> String {
    super::new_token()
}

/// Whether `name` can be a host's (what `hostname` gives: letters,
/// digits, dots, dashes, underscores).
pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 253
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "`{name}` is not a host name (letters, digits, `.`, `-` and `_`, at most 253)"
        ));
    }
    Ok(())
}

/// What `token create` is asked for.
pub struct NewToken<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub environment: Option<&'a str>,
    pub expires_unix: Option<i64>,
    /// Revoke a host's live token and make a new one.
    pub replace: bool,
    pub created_by: &'a str,
}

/// The live host token of `name`, if any: (id, environment, created).
fn live_host(
    sql: &mut dyn Sql,
    name: &str,
    now: i64,
) -> Result<Option<(i64, Option<String>, i64)>, StoreError> {
    let rows = sql.rows(
        "SELECT id, environment, created_unix FROM identities
         WHERE kind = 'host' AND name = $1 AND revoked_unix IS NULL
           AND (expires_unix IS NULL OR expires_unix > $2)
         ORDER BY id DESC",
        &[Param::Text(name.to_owned()), Param::Int(now)],
    )?;
    Ok(rows
        .first()
        .map(|r| (r[0].int(), r[1].opt_text(), r[2].int())))
}

fn insert(sql: &mut dyn Sql, new: &NewToken, token: &str, now: i64) -> Result<(), StoreError> {
    let hash = token_hash(token);
    sql.exec(
        "INSERT INTO identities (kind, name, environment, lookup, hash, created_unix, created_by, expires_unix)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            Param::Text(new.kind.word().to_owned()),
            Param::Text(new.name.to_owned()),
            Param::OptText(new.environment.map(str::to_owned)),
            Param::Text(lookup_key(&hash)),
            Param::Text(hash),
            Param::Int(now),
            Param::Text(new.created_by.to_owned()),
            Param::OptInt(new.expires_unix),
        ],
    )?;
    Ok(())
}

/// Makes a token; the secret, shown once (only its digest is kept), or why
/// not. A host has one live token: another needs `replace`, which revokes
/// the old one.
pub fn create(
    sql: &mut dyn Sql,
    new: &NewToken,
    now: i64,
) -> Result<Result<String, String>, StoreError> {
    if new.kind == Kind::Host {
        sql.lock_environment(&format!("host {}", new.name))?;
        if let Some((_, environment, created)) = live_host(sql, new.name, now)? {
            if !new.replace {
                return Ok(Err(format!(
                    "`{}` already has a host token (for {}, made {}); pass --replace to revoke it and make a new one",
                    new.name,
                    environment.as_deref().unwrap_or("no environment"),
                    rfc3339(created)
                )));
            }
            revoke_host(sql, new.name, now)?;
        }
    }
    let token = new_secret();
    insert(sql, new, &token, now)?;
    Ok(Ok(token))
}

fn revoke_host(sql: &mut dyn Sql, name: &str, now: i64) -> Result<u64, StoreError> {
    sql.exec(
        "UPDATE identities SET revoked_unix = $2
         WHERE kind = 'host' AND name = $1 AND revoked_unix IS NULL",
        &[Param::Text(name.to_owned()), Param::Int(now)],
    )
}

/// Revokes every live token of `name` of that kind; how many.
pub fn revoke(sql: &mut dyn Sql, kind: Kind, name: &str, now: i64) -> Result<u64, StoreError> {
    sql.exec(
        "UPDATE identities SET revoked_unix = $3
         WHERE kind = $1 AND name = $2 AND revoked_unix IS NULL",
        &[
            Param::Text(kind.word().to_owned()),
            Param::Text(name.to_owned()),
            Param::Int(now),
        ],
    )
}

/// A token as `token list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub kind: Kind,
    pub name: String,
    pub environment: Option<String>,
    pub created_unix: i64,
    pub created_by: String,
    pub expires_unix: Option<i64>,
    pub last_used_unix: Option<i64>,
    pub revoked_unix: Option<i64>,
}

/// Every token, live or not, by kind and name.
pub fn list(sql: &mut dyn Sql) -> Result<Vec<TokenRow>, StoreError> {
    let rows = sql.rows(
        "SELECT kind, name, environment, created_unix, created_by, expires_unix, last_used_unix, revoked_unix
         FROM identities ORDER BY kind, name, id",
        &[],
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(TokenRow {
                kind: Kind::parse(&r[0].text())?,
                name: r[1].text(),
                environment: r[2].opt_text(),
                created_unix: r[3].int(),
                created_by: r[4].text(),
                expires_unix: r[5].opt_int(),
                last_used_unix: r[6].opt_int(),
                revoked_unix: r[7].opt_int(),
            })
        })
        .collect())
}

/// Records when tokens were last used (kept in memory by the server and
/// written now and then, not on every request).
pub fn touch(sql: &mut dyn Sql, used: &[(i64, i64)]) -> Result<(), StoreError> {
    for (id, unix) in used {
        sql.exec(
            "UPDATE identities SET last_used_unix = $2
             WHERE id = $1 AND (last_used_unix IS NULL OR last_used_unix < $2)",
            &[Param::Int(*id), Param::Int(*unix)],
        )?;
    }
    Ok(())
}

// --- Enrollment ---------------------------------------------------------

/// What `enroll create` is asked for.
pub struct NewJoin<'a> {
    pub environment: &'a str,
    pub pattern: &'a str,
    pub max_uses: Option<i64>,
    pub expires_unix: Option<i64>,
    pub allow_rebuild: bool,
    pub created_by: &'a str,
}

/// Makes a join token; the secret (shown once) and its id.
pub fn create_join(
    sql: &mut dyn Sql,
    new: &NewJoin,
    now: i64,
) -> Result<(String, i64), StoreError> {
    let token = new_secret();
    let hash = token_hash(&token);
    sql.exec(
        "INSERT INTO joins (environment, pattern, lookup, hash, max_uses, allow_rebuild, created_unix, created_by, expires_unix)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            Param::Text(new.environment.to_owned()),
            Param::Text(new.pattern.to_owned()),
            Param::Text(lookup_key(&hash)),
            Param::Text(hash.clone()),
            Param::OptInt(new.max_uses),
            Param::Int(i64::from(new.allow_rebuild)),
            Param::Int(now),
            Param::Text(new.created_by.to_owned()),
            Param::OptInt(new.expires_unix),
        ],
    )?;
    let id = sql
        .rows("SELECT id FROM joins WHERE hash = $1", &[Param::Text(hash)])?
        .first()
        .map_or(0, |r| r[0].int());
    Ok((token, id))
}

/// A host token given for a join token.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub token: String,
    /// A host of this name had a token, now revoked (a rebuilt host).
    pub rebuilt: bool,
}

/// A host exchanges a join token for a host token of its own; or why not
/// (each a 403, with nothing created).
pub fn enroll(
    sql: &mut dyn Sql,
    join_token: &str,
    host: &str,
    environment: &str,
    now: i64,
) -> Result<Result<Enrolled, String>, StoreError> {
    if let Err(e) = check_host_name(host) {
        return Ok(Err(e));
    }
    // One enrollment of a name at a time, across log servers.
    sql.lock_environment(&format!("host {host}"))?;
    let Some(join) = matching(
        sql,
        "SELECT id, environment, pattern, max_uses, uses, allow_rebuild, expires_unix, revoked_unix, hash
         FROM joins WHERE lookup = $1",
        join_token,
    )?
    else {
        return Ok(Err("unknown join token".into()));
    };
    let id = join[0].int();
    if let Some(revoked) = join[7].opt_int() {
        return Ok(Err(format!(
            "this join token was revoked at {}",
            rfc3339(revoked)
        )));
    }
    if let Some(expires) = join[6].opt_int().filter(|e| *e <= now) {
        return Ok(Err(format!(
            "this join token expired at {}",
            rfc3339(expires)
        )));
    }
    let joins_environment = join[1].text();
    if joins_environment != environment {
        return Ok(Err(format!(
            "this join token is for the environment `{joins_environment}`, not `{environment}`"
        )));
    }
    let pattern = join[2].text();
    let matches = glob::Pattern::new(&pattern).is_ok_and(|p| host_matches(&p, host));
    if !matches {
        return Ok(Err(format!(
            "`{host}` does not match this join token's names `{pattern}`"
        )));
    }
    let allow_rebuild = join[5].int() != 0;
    let mut rebuilt = false;
    if let Some((_, held_in, created)) = live_host(sql, host, now)? {
        if !allow_rebuild {
            return Ok(Err(format!(
                "`{host}` already has a host token (made {}); a join token does not take over a name: an operator replaces it with `tend log token create {host} --env {environment} --replace`, or makes join tokens with --allow-rebuild",
                rfc3339(created)
            )));
        }
        if held_in.as_deref() != Some(environment) {
            return Ok(Err(format!(
                "`{host}` is enrolled in `{}`; a join token for `{environment}` does not move it",
                held_in.as_deref().unwrap_or("no environment")
            )));
        }
        revoke_host(sql, host, now)?;
        rebuilt = true;
    }
    let counted = sql.exec(
        "UPDATE joins SET uses = uses + 1 WHERE id = $1 AND (max_uses IS NULL OR uses < max_uses)",
        &[Param::Int(id)],
    )?;
    if counted == 0 {
        return Ok(Err(format!(
            "this join token has been used {} times, its limit",
            join[4].int()
        )));
    }
    let token = new_secret();
    let created_by = format!("enroll #{id}");
    insert(
        sql,
        &NewToken {
            kind: Kind::Host,
            name: host,
            environment: Some(environment),
            expires_unix: None,
            replace: false,
            created_by: &created_by,
        },
        &token,
        now,
    )?;
    sql.exec(
        "INSERT INTO enrollments (join_id, host, environment, enrolled_unix, rebuilt)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            Param::Int(id),
            Param::Text(host.to_owned()),
            Param::Text(environment.to_owned()),
            Param::Int(now),
            Param::Int(i64::from(rebuilt)),
        ],
    )?;
    Ok(Ok(Enrolled { token, rebuilt }))
}

/// A join token as `enroll list` shows it, with who enrolled with it.
#[derive(Debug, Clone, Serialize)]
pub struct JoinRow {
    pub id: i64,
    pub environment: String,
    pub pattern: String,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub allow_rebuild: bool,
    pub created_unix: i64,
    pub created_by: String,
    pub expires_unix: Option<i64>,
    pub revoked_unix: Option<i64>,
    /// (host, when, rebuilt), oldest first.
    pub enrolled: Vec<(String, i64, bool)>,
}

pub fn joins(sql: &mut dyn Sql) -> Result<Vec<JoinRow>, StoreError> {
    let rows = sql.rows(
        "SELECT id, environment, pattern, max_uses, uses, allow_rebuild, created_unix, created_by, expires_unix, revoked_unix
         FROM joins ORDER BY id",
        &[],
    )?;
    let mut out: Vec<JoinRow> = rows
        .into_iter()
        .map(|r| JoinRow {
            id: r[0].int(),
            environment: r[1].text(),
            pattern: r[2].text(),
            max_uses: r[3].opt_int(),
            uses: r[4].int(),
            allow_rebuild: r[5].int() != 0,
            created_unix: r[6].int(),
            created_by: r[7].text(),
            expires_unix: r[8].opt_int(),
            revoked_unix: r[9].opt_int(),
            enrolled: Vec::new(),
        })
        .collect();
    for r in sql.rows(
        "SELECT join_id, host, enrolled_unix, rebuilt FROM enrollments ORDER BY enrolled_unix, id",
        &[],
    )? {
        if let Some(join) = out.iter_mut().find(|j| j.id == r[0].int()) {
            join.enrolled
                .push((r[1].text(), r[2].int(), r[3].int() != 0));
        }
    }
    Ok(out)
}

/// Revokes a join token by id; whether there was a live one.
pub fn revoke_join(sql: &mut dyn Sql, id: i64, now: i64) -> Result<bool, StoreError> {
    Ok(sql.exec(
        "UPDATE joins SET revoked_unix = $2 WHERE id = $1 AND revoked_unix IS NULL",
        &[Param::Int(id), Param::Int(now)],
    )? > 0)
}

/// When each host last enrolled again in place of a rebuilt one.
pub fn re_enrolled(sql: &mut dyn Sql) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sql
        .rows(
            "SELECT host, MAX(enrolled_unix) FROM enrollments WHERE rebuilt = 1 GROUP BY host",
            &[],
        )?
        .into_iter()
        .map(|r| (r[0].text(), r[1].int()))
        .collect())
}

// --- Browser sessions ---------------------------------------------------

/// How long a dashboard session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// Opens a session for a viewer or operator; the cookie's secret.
pub fn open_session(sql: &mut dyn Sql, who: &Identity, now: i64) -> Result<String, StoreError> {
    let secret = new_secret();
    let hash = token_hash(&secret);
    sql.exec(
        "DELETE FROM sessions WHERE expires_unix <= $1",
        &[Param::Int(now)],
    )?;
    sql.exec(
        "INSERT INTO sessions (lookup, hash, identity_id, created_unix, expires_unix)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            Param::Text(lookup_key(&hash)),
            Param::Text(hash),
            Param::Int(who.id),
            Param::Int(now),
            Param::Int(now + SESSION_SECONDS),
        ],
    )?;
    Ok(secret)
}

/// Whose session a cookie's secret is: none when it is unknown, expired,
/// or its token was revoked or expired since.
pub fn session(sql: &mut dyn Sql, secret: &str, now: i64) -> Result<Option<Identity>, StoreError> {
    let Some(row) = matching(
        sql,
        "SELECT i.id, i.kind, i.name, i.environment, i.expires_unix, i.revoked_unix, s.expires_unix, s.hash
         FROM sessions s JOIN identities i ON i.id = s.identity_id WHERE s.lookup = $1",
        secret,
    )?
    else {
        return Ok(None);
    };
    let live = row[5].opt_int().is_none()
        && row[4].opt_int().is_none_or(|e| e > now)
        && row[6].int() > now;
    Ok(live
        .then(|| {
            Some(Identity {
                id: row[0].int(),
                kind: Kind::parse(&row[1].text())?,
                name: row[2].text(),
                environment: row[3].opt_text(),
            })
        })
        .flatten())
}

/// Ends a session (sign-out).
pub fn close_session(sql: &mut dyn Sql, secret: &str) -> Result<(), StoreError> {
    sql.exec(
        "DELETE FROM sessions WHERE hash = $1",
        &[Param::Text(token_hash(secret))],
    )?;
    Ok(())
}

/// Whether a host name matches a glob of host names (`web-*.prod`), as
/// join tokens and wakes select hosts: DNS names, so case does not count,
/// and `*` spans dots.
pub fn host_matches(pattern: &glob::Pattern, host: &str) -> bool {
    pattern.matches_with(
        host,
        glob::MatchOptions {
            case_sensitive: false,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        },
    )
}
