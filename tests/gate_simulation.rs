//! The rollout gate, simulated (SPEC §8): thousands of hosts on a virtual
//! clock, each on its own interval and splay, asking the real gate over
//! the real SQLite store exactly as the server does (the read-only answer
//! first, then the deciding one), reporting the runs they make. Hosts
//! fail, hang, die and refuse; new ones appear mid-rollout; the log
//! restarts (all state read back from the store) and two servers take
//! turns on one database. Invariants are checked at every step; a broken
//! one prints the seed that replays it.
//!
//! `TEND_SIM_SEEDS` (how many, or `SEED` to replay one), `TEND_SIM_HOSTS`
//! and `TEND_SIM_SECONDS` (a time budget) make a long run by hand:
//! `TEND_SIM_HOSTS=10000 TEND_SIM_SEEDS=20 cargo test --release gate_simulation -- --nocapture`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;
use tend::report::Report;
use tend::rollout::{AdmitRequest, HaltOn, OnHalt, Policy, Wave};
use tend::source::Revision;
use tend_log::rollouts::{Action, CommitFacts, History};
use tend_log::sqlite::SqliteStore;
use tend_log::store::{Incoming, Question, Store};

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// A linear history: each commit descends from the ones before.
struct Line {
    commits: Mutex<Vec<String>>,
}

impl History for Line {
    fn descends(&self, ancestor: &str, commit: &str) -> bool {
        let commits = self.commits.lock().unwrap();
        let at = |c: &str| commits.iter().position(|x| x == c);
        matches!((at(ancestor), at(commit)), (Some(a), Some(c)) if a <= c)
    }
    fn tip(&self) -> Option<String> {
        self.commits.lock().unwrap().last().cloned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Every run of a rolled-out commit fails.
    Fails,
    /// Admitted, its run hangs for ever: no report, no more cycles.
    Hangs,
    /// Stops for good at a random time.
    Dies,
    /// The rolled-out commit does not compile there: it reports refusals.
    Refuses,
}

struct Host {
    name: String,
    interval: i64,
    offset: i64,
    fault: Fault,
    /// The commit it runs.
    applied: Option<String>,
    gone: bool,
    dies_at: i64,
}

struct Sim {
    rng: Rng,
    seed: u64,
    now: i64,
    db: PathBuf,
    stores: Vec<SqliteStore>,
    turn: usize,
    line: Line,
    policy: Policy,
    hosts: Vec<Host>,
    queue: BinaryHeap<Reverse<(i64, usize)>>,
    /// Ground truth: when each host was admitted to each commit.
    admitted: HashMap<(String, String), i64>,
    /// Rollouts seen halted, and what they were resumed from.
    halts: Vec<(String, String)>,
    last_tick: i64,
    steps: u64,
    checker: rusqlite::Connection,
}

const ENV: &str = "prod";
const START: i64 = 1_800_000_000;

fn revision(commit: &str) -> Revision {
    Revision {
        commit: commit.to_owned(),
        author: "Ana Diaz <ana@example.com>".into(),
        committed_at: "2026-12-01T10:00:00Z".into(),
        subject: format!("change {commit}"),
    }
}

impl Sim {
    fn new(seed: u64, hosts: usize, faults: bool, dir: &Path) -> Sim {
        let mut rng = Rng(seed);
        let db = dir.join(format!("sim-{seed}-{faults}.db"));
        let stores = vec![
            SqliteStore::open(&db).unwrap(),
            SqliteStore::open(&db).unwrap(),
        ];
        let checker = rusqlite::Connection::open(&db).unwrap();
        let policy = Policy {
            canary: vec!["host-00000".into(), "host-00001".into()],
            waves: vec![
                Wave::Percent(1.0),
                Wave::Percent(10.0),
                Wave::Percent(50.0),
                Wave::Percent(100.0),
            ],
            soak_s: 600 + rng.below(1200),
            deadline_s: 1800,
            halt_on: HaltOn {
                // Up to one host in two hundred: a large faulty fleet still
                // gets past its first waves now and then.
                failed: if faults {
                    1 + u32::try_from(rng.below((hosts as u64 / 200).max(3))).unwrap()
                } else {
                    1
                },
                drift_after_apply: 0,
            },
            on_halt: if rng.chance(500) {
                OnHalt::Rollback
            } else {
                OnHalt::Hold
            },
        };
        let hosts = (0..hosts)
            .map(|i| {
                let interval = 60 * (5 + i64::try_from(rng.below(56)).unwrap());
                let fault = if !faults || i < 2 {
                    Fault::None
                } else {
                    match rng.below(1000) {
                        0..=4 => Fault::Fails,
                        5..=9 => Fault::Hangs,
                        10..=29 => Fault::Dies,
                        30..=32 => Fault::Refuses,
                        _ => Fault::None,
                    }
                };
                Host {
                    name: format!("host-{i:05}"),
                    offset: i64::try_from(rng.below(u64::try_from(interval).unwrap())).unwrap(),
                    interval,
                    fault,
                    applied: Some("c0".into()),
                    gone: false,
                    dies_at: START + i64::try_from(rng.below(6 * 3600)).unwrap(),
                }
            })
            .collect();
        Sim {
            rng,
            seed,
            now: START,
            db,
            stores,
            turn: 0,
            line: Line {
                commits: Mutex::new(vec!["c0".into()]),
            },
            policy,
            hosts,
            queue: BinaryHeap::new(),
            admitted: HashMap::new(),
            halts: Vec::new(),
            last_tick: START,
            steps: 0,
            checker,
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "gate simulation, seed {} (replay: TEND_SIM_SEEDS={}), t+{} s, step {}: {what}",
            self.seed,
            self.seed,
            self.now - START,
            self.steps
        );
    }

    /// The server this event reaches: two of them on one database, the
    /// second taking one event in ten (each keeps its own cache of the
    /// rollouts, which the other's writes must invalidate).
    fn store(&mut self) -> &SqliteStore {
        self.turn = usize::from(self.rng.chance(100));
        &self.stores[self.turn]
    }

    fn facts(&self, commit: &str) -> CommitFacts {
        CommitFacts {
            revision: revision(commit),
            policy: (commit != "c0").then(|| self.policy.clone()),
        }
    }

    fn report(&mut self, host: usize, commit: Option<&str>, outcome: &str, refused: Option<&str>) {
        let h = &self.hosts[host];
        let failed = outcome == "failed";
        let body = json!({
            "id": format!("{}-{}-{}", h.name, self.now, self.rng.next()),
            "host": h.name, "environment": ENV, "roles": ["web"], "mode": "apply",
            "revision": commit.map(revision),
            "rejected": refused.map(|c| json!({
                "commit": c, "author": "Ana Diaz <ana@example.com>", "committed_at": "2026-12-01T10:00:00Z",
                "subject": "broken", "reason": "it does not compile for this host (1 problems)",
                "errors": ["roles/web/role.yaml:3:11: undefined variable `x`"] })),
            "source_stale": false, "started_at": "2026-12-01T10:00:00Z", "duration_ms": 5,
            "interval_s": h.interval,
            "status": if failed { "failed" } else { "unchanged" },
            "summary": { "total": 1, "changed": 0, "drift": 0, "failed": usize::from(failed),
                         "unchanged": usize::from(!failed), "unknown": 0 },
            "resources": if failed { json!([{ "id": "exec:migrate", "status": "failed", "error": "exit 1", "duration_ms": 1 }]) } else { json!([]) },
        })
        .to_string();
        let report: Report = serde_json::from_str(&body).unwrap();
        let now = self.now;
        let inserted = self
            .store()
            .insert(&[Incoming {
                report,
                body,
                received_unix: now,
            }])
            .unwrap();
        for halt in inserted.halts {
            self.halted(&halt.commit, halt.halted_by.as_ref());
        }
    }

    /// A halt must have a cause: a host that failed or refused, or one
    /// admitted a deadline ago that never reported.
    fn halted(&mut self, commit: &str, by: Option<&tend_log::rollouts::HaltedBy>) {
        let Some(by) = by else {
            self.fail(&format!("{commit} halted by nobody"));
        };
        let Some(i) = self.hosts.iter().position(|h| h.name == by.host) else {
            self.fail(&format!("{commit} halted by an unknown host {}", by.host));
        };
        let fault = self.hosts[i].fault;
        let admitted = self
            .admitted
            .get(&(by.host.clone(), commit.to_owned()))
            .copied();
        let deadline = i64::try_from(self.policy.deadline_s).unwrap();
        let justified = match fault {
            Fault::Fails | Fault::Refuses => true,
            Fault::Hangs | Fault::Dies => {
                by.error.contains("no report within")
                    && admitted.is_some_and(|t| self.now >= t + deadline)
            }
            Fault::None => false,
        };
        if !justified {
            self.fail(&format!(
                "{commit} halted by {} ({fault:?}, admitted {admitted:?}): {} {}",
                by.host, by.resource, by.error
            ));
        }
        self.halts.push((commit.to_owned(), by.host.clone()));
    }

    /// Safety, from the store itself: no admitted host is in a wave that
    /// is not open.
    fn check_store(&self) {
        let over: i64 = self
            .checker
            .query_row(
                "SELECT COUNT(*) FROM rollout_hosts h JOIN rollouts r ON r.id = h.rollout_id
                 WHERE h.admitted_unix IS NOT NULL AND h.wave > r.wave",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if over > 0 {
            self.fail(&format!("{over} hosts admitted past the open wave"));
        }
    }

    fn schedule(&mut self, host: usize, at: i64) {
        self.queue.push(Reverse((at, host)));
    }

    /// A host's next slot: its offset inside every interval.
    fn next_slot(&self, host: usize) -> i64 {
        let h = &self.hosts[host];
        let since = self.now - START - h.offset;
        START + h.offset + (since.div_euclid(h.interval) + 1) * h.interval
    }

    fn cycle(&mut self, host: usize) {
        let h = &self.hosts[host];
        if h.gone {
            return;
        }
        if h.fault == Fault::Dies && self.now >= h.dies_at {
            self.hosts[host].gone = true;
            return;
        }
        let tip = self.line.tip().unwrap();
        let applied = h.applied.clone();
        let fault = h.fault;
        let mut next = self.next_slot(host);
        let rolled_out = tip != "c0";
        if fault == Fault::Refuses && rolled_out && applied.as_deref() != Some(tip.as_str()) {
            // It does not compile here: refused without asking.
            if applied.is_some() {
                self.report(host, applied.as_deref(), "clean", Some(&tip));
            } else {
                self.report(host, None, "clean", Some(&tip));
            }
            self.schedule(host, next);
            return;
        }
        let answer = if rolled_out {
            Some(self.ask(host, &tip))
        } else {
            None
        };
        let mut run = applied.clone();
        if let Some(a) = &answer {
            if let Some(to) = &a.rollback_to {
                run = Some(to.clone());
            } else if a.admitted {
                run = Some(tip.clone());
            } else if let Some(retry) = a.retry_after_s {
                next = next.min(self.now + i64::try_from(retry.max(5)).unwrap());
            }
        } else {
            run = Some(tip.clone());
        }
        let Some(run) = run else {
            // Never converged and not admitted: nothing to run, nothing
            // to report.
            self.schedule(host, next);
            return;
        };
        let new = applied.as_deref() != Some(run.as_str());
        if fault == Fault::Hangs && new && run != "c0" {
            self.hosts[host].gone = true;
            return;
        }
        let outcome = if fault == Fault::Fails && run != "c0" {
            "failed"
        } else {
            "clean"
        };
        self.hosts[host].applied = Some(run.clone());
        self.report(host, Some(&run), outcome, None);
        self.schedule(host, next);
    }

    fn ask(&mut self, host: usize, commit: &str) -> tend::rollout::Admission {
        let name = self.hosts[host].name.clone();
        let question = Question {
            request: AdmitRequest {
                environment: ENV.into(),
                commit: commit.to_owned(),
                host: name.clone(),
            },
            facts: self.facts(commit),
        };
        let now = self.now;
        // The same two steps as the server.
        self.store();
        let quick = self.stores[self.turn]
            .admit_read(&self.line, &question, now)
            .unwrap();
        let answer = match quick {
            Some(a) => a,
            None => {
                let store = &self.stores[self.turn];
                store.admit(&self.line, &[question], now).unwrap().remove(0)
            }
        };
        let key = (name.clone(), commit.to_owned());
        if answer.admitted && answer.rollback_to.is_none() {
            let open = answer.state == tend::rollout::gate::Phase::Done
                || answer.host_wave.is_none_or(|w| w <= answer.wave);
            if !open {
                self.fail(&format!(
                    "{name} admitted to wave {:?} with wave {} open",
                    answer.host_wave, answer.wave
                ));
            }
            if !self.admitted.contains_key(&key) {
                if matches!(
                    answer.state,
                    tend::rollout::gate::Phase::Halted | tend::rollout::gate::Phase::Aborted
                ) {
                    self.fail(&format!(
                        "{name} newly admitted to a {:?} rollout",
                        answer.state
                    ));
                }
                self.admitted.insert(key, now);
            }
        }
        answer
    }

    fn tick(&mut self) {
        while self.last_tick + 5 <= self.now {
            self.last_tick += 5;
            let at = self.last_tick;
            let halts = self.store().tick(at).unwrap();
            for halt in halts {
                self.halted(&halt.commit, halt.halted_by.as_ref());
            }
        }
    }

    fn rollout(&self, commit: &str) -> tend_log::rollouts::RolloutRow {
        self.stores[0]
            .rollouts(Some(ENV), Some(commit), 1)
            .unwrap()
            .pop()
            .unwrap_or_else(|| self.fail(&format!("no rollout of {commit}")))
    }

    /// Runs until `until` or until `done` says so.
    fn run(&mut self, until: i64, mut done: impl FnMut(&mut Sim) -> bool) {
        let check_every = (self.hosts.len() / 200).max(1) as u64;
        while let Some(Reverse((at, host))) = self.queue.pop() {
            if at > until {
                self.queue.push(Reverse((at, host)));
                break;
            }
            self.now = at;
            self.tick();
            self.steps += 1;
            self.cycle(host);
            if self.steps.is_multiple_of(check_every) {
                self.check_store();
            }
            // Now and then the log restarts: everything it knows is read
            // back from the store.
            if self.rng.chance(2) {
                self.stores = vec![
                    SqliteStore::open(&self.db).unwrap(),
                    SqliteStore::open(&self.db).unwrap(),
                ];
            }
            if self.steps.is_multiple_of(64) && done(self) {
                break;
            }
        }
        self.check_store();
    }
}

/// A scenario: the fleet runs c0, c1 is pushed, maybe c2 during its
/// rollout; new hosts appear. Healthy fleets must finish in time; faulty
/// ones must halt only for cause.
fn scenario(seed: u64, hosts: usize, faults: bool, dir: &Path) -> BTreeMap<&'static str, i64> {
    let mut sim = Sim::new(seed, hosts, faults, dir);
    // Everyone reports c0 within its last interval: the log knows them.
    for i in 0..sim.hosts.len() {
        let first = START - sim.hosts[i].interval + sim.hosts[i].offset;
        sim.now = first;
        sim.report(i, Some("c0"), "clean", None);
    }
    sim.now = START;
    for i in 0..sim.hosts.len() {
        let at = sim.next_slot(i);
        sim.schedule(i, at);
    }
    sim.line.commits.lock().unwrap().push("c1".into());
    // Newcomers: a few hosts that never ran anything, appearing during
    // the rollout.
    let newcomers = hosts / 50 + 1;
    for k in 0..newcomers {
        let interval = 60 * (5 + i64::try_from(sim.rng.below(56)).unwrap());
        sim.hosts.push(Host {
            name: format!("new-{k:04}"),
            interval,
            offset: i64::try_from(sim.rng.below(u64::try_from(interval).unwrap())).unwrap(),
            fault: Fault::None,
            applied: None,
            gone: false,
            dies_at: i64::MAX,
        });
        let at = START + i64::try_from(sim.rng.below(3 * 3600)).unwrap();
        let i = sim.hosts.len() - 1;
        sim.schedule(i, at);
    }
    let longest = sim.hosts.iter().map(|h| h.interval).max().unwrap();
    let waves = i64::from(sim.policy.last_wave());
    let soak = i64::try_from(sim.policy.soak_s).unwrap();
    let deadline = i64::try_from(sim.policy.deadline_s).unwrap();
    // SPEC §8's promise for healthy hosts; a newcomer joins at most at the
    // last one's arrival.
    let bound = waves * soak + (waves + 1) * longest + deadline;
    let supersede = sim.rng.chance(300);
    let push_c2_at =
        START + i64::try_from(sim.rng.below(u64::try_from(bound).unwrap() / 2)).unwrap();
    let mut figures = BTreeMap::new();
    if supersede {
        sim.run(push_c2_at, |_| false);
        sim.line.commits.lock().unwrap().push("c2".into());
        figures.insert("superseded at", push_c2_at - START);
    }
    let last = if supersede { "c2" } else { "c1" };
    let started = if supersede { push_c2_at } else { START };
    let end = started + 3 * bound + 4 * 3600;
    sim.run(end, |sim| {
        let r = sim.rollout(last);
        r.state == "done" || r.state == "halted"
    });
    let r = sim.rollout(last);
    if supersede {
        // In motion when c2 came, c1 gave way; done before, it stays done.
        let first = sim.rollout("c1");
        let done_before = first.state == "done" && first.updated_unix <= push_c2_at;
        if first.state != "superseded" && !done_before {
            sim.fail(&format!("c1 is {} after c2 came", first.state));
        }
    }
    if !faults {
        if r.state != "done" {
            sim.fail(&format!(
                "a healthy fleet's rollout of {last} is {} (wave {} of {}, {} admitted of {}) after {} s; bound {bound} s",
                r.state,
                r.wave,
                r.waves,
                r.admitted,
                r.hosts,
                sim.now - started
            ));
        }
        let took = r.updated_unix - started;
        // Newcomers arriving late lengthen nothing: the bound counts from
        // the push.
        if took > bound {
            sim.fail(&format!(
                "the rollout took {took} s, more than the bound of {bound} s"
            ));
        }
        figures.insert("took_s", took);
        figures.insert("bound_s", bound);
        // Every host that is there ends on the commit.
        for h in &sim.hosts {
            if h.applied.as_deref() != Some(last) && !h.gone {
                // A newcomer may not have come yet.
                if h.name.starts_with("new-") && h.applied.is_none() {
                    continue;
                }
                sim.fail(&format!(
                    "{} runs {:?} after the rollout of {last} was done",
                    h.name, h.applied
                ));
            }
        }
    } else if r.state == "halted" {
        figures.insert("halted_at_s", r.updated_unix - started);
        // An operator resumes: the failures so far are forgiven; the
        // gate goes on and halts again only for new failures.
        let store = &sim.stores[0];
        let resumed = store
            .act(ENV, Some(last), Action::Resume, "sim", sim.now)
            .unwrap();
        if resumed.is_err() {
            sim.fail(&format!("resume refused: {resumed:?}"));
        }
        let before = sim.halts.len();
        sim.run(end + bound, |sim| {
            let r = sim.rollout(last);
            r.state == "done" || r.state == "halted"
        });
        figures.insert(
            "halts_after_resume",
            i64::try_from(sim.halts.len() - before).unwrap(),
        );
        // The host that halted it before the resume was forgiven (for
        // this commit: a failure of another one says nothing).
        if let Some((_, host)) = sim.halts[before..].first()
            && sim.halts[..before]
                .iter()
                .any(|(c, h)| c == last && h == host)
        {
            let r = sim.rollout(last);
            sim.fail(&format!(
                "{host} halted the rollout again after it was forgiven: halts {:?}, now {:?}",
                sim.halts, r.halted_by
            ));
        }
    }
    figures.insert("steps", i64::try_from(sim.steps).unwrap());
    figures.insert("hosts", i64::try_from(sim.hosts.len()).unwrap());
    figures
}

fn seeds() -> Vec<u64> {
    match std::env::var("TEND_SIM_SEEDS") {
        Ok(s) if s.len() > 4 => vec![s.parse().expect("a seed")],
        Ok(s) => {
            let n: u64 = s.parse().expect("a number of seeds");
            (0..n).map(|_| fresh_seed()).collect()
        }
        Err(_) => (0..4).map(|_| fresh_seed()).collect(),
    }
}

fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    u64::try_from(nanos % u128::from(u64::MAX)).unwrap() | (1 << 40)
}

#[test]
fn gate_simulation_healthy_fleets_finish_in_time_and_faulty_ones_halt_only_for_cause() {
    let hosts: usize = std::env::var("TEND_SIM_HOSTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let budget: u64 = std::env::var("TEND_SIM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // The store's fsyncs cost nothing on tmpfs, where there is one.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let started = Instant::now();
    let mut ran = HashSet::new();
    for seed in seeds() {
        for faults in [false, true] {
            let clock = Instant::now();
            let figures = scenario(seed, hosts, faults, dir.path());
            eprintln!(
                "seed {seed} {}: {figures:?} in {:.1} s",
                if faults { "faulty" } else { "healthy" },
                clock.elapsed().as_secs_f64()
            );
            ran.insert((seed, faults));
        }
        if started.elapsed().as_secs() >= budget {
            break;
        }
    }
    assert!(ran.len() >= 2);
}
