//! Runs per hour by status, kept as reports come (one row an hour and a
//! status), so the front page draws a week of runs from 168 × 6 rows
//! whatever the store holds. Written once for both stores.

use std::collections::BTreeMap;

use super::sql::Sql;
use super::sql::{Param, StoreError};

/// How many runs of each (hour, status) a batch adds; the hour is the
/// run's start, in hours since the epoch.
#[derive(Debug, Default)]
pub struct Tally(BTreeMap<(i64, String), i64>);

impl Tally {
    pub fn add(&mut self, started_unix: i64, status: &str) {
        *self
            .0
            .entry((started_unix.div_euclid(3600), status.to_owned()))
            .or_default() += 1;
    }

    /// Adds the tally to the store, rows in one order (hour, status) so
    /// two servers' batches never wait on each other in a circle.
    pub fn record(&self, db: &mut dyn Sql) -> Result<(), StoreError> {
        for ((hour, status), runs) in &self.0 {
            db.exec(
                "INSERT INTO runs_hourly (hour, status, runs) VALUES ($1, $2, $3)
                 ON CONFLICT (hour, status) DO UPDATE SET runs = runs_hourly.runs + excluded.runs",
                &[
                    Param::Int(*hour),
                    Param::Text(status.clone()),
                    Param::Int(*runs),
                ],
            )?;
        }
        Ok(())
    }
}

/// One hour's runs of one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hour {
    /// Hours since the epoch.
    pub hour: i64,
    pub status: String,
    pub runs: i64,
}

/// The runs of the hours from `from_hour` on.
pub fn since(db: &mut dyn Sql, from_hour: i64) -> Result<Vec<Hour>, StoreError> {
    Ok(db
        .rows(
            "SELECT hour, status, runs FROM runs_hourly WHERE hour >= $1 ORDER BY hour",
            &[Param::Int(from_hour)],
        )?
        .iter()
        .map(|c| Hour {
            hour: c[0].int(),
            status: c[1].text(),
            runs: c[2].int(),
        })
        .collect())
}
