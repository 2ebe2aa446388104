//! The rollout gate's decisions (SPEC §8) as a pure state machine:
//! (rollout, event, now) → (rollout, answer). No clock, no SQL, no git:
//! the log loads a [`Rollout`] under its environment's lock, calls
//! [`step`], and saves what [`Step::touched`] names. The simulation in the
//! tests drives the same function on a virtual clock.
//!
//! A rollout's hosts are its [`Member`]s: the environment's hosts the log
//! knew alive when it started, each with its wave, and every host that
//! asks later. A wave is *settled* when every member of the open waves
//! that is alive or admitted has reported on the commit (clean, failed,
//! refused) or missed its deadline; the next wave opens `soak` after the
//! last of them *first* reported clean.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{OnHalt, Policy, bucket};

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Rolling,
    Halted,
    Done,
    Superseded,
    Aborted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Rolling => "rolling",
            Phase::Halted => "halted",
            Phase::Done => "done",
            Phase::Superseded => "superseded",
            Phase::Aborted => "aborted",
        }
    }

    pub fn parse(text: &str) -> Phase {
        match text {
            "halted" => Phase::Halted,
            "done" => Phase::Done,
            "superseded" => Phase::Superseded,
            "aborted" => Phase::Aborted,
            _ => Phase::Rolling,
        }
    }

    /// Rolling or halted: hosts still come and go.
    pub fn in_motion(self) -> bool {
        matches!(self, Phase::Rolling | Phase::Halted)
    }
}

/// Who halted a rollout, with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaltedBy {
    pub host: String,
    pub report: String,
    /// The first failed resource (or the refused commit, or the deadline).
    pub resource: String,
    pub error: String,
    /// failed, or drift_after_apply.
    pub condition: String,
    pub at_unix: i64,
}

/// Why a member's run of the commit counts as failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// failed, refused, or deadline.
    pub kind: String,
    pub resource: String,
    pub error: String,
    pub report: String,
    pub at_unix: i64,
}

/// A host's place in a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub wave: u32,
    pub bucket: i64,
    /// The last time the host asked or reported.
    pub seen: i64,
    /// The host's interval (its own runs: what it says of itself).
    pub interval_s: i64,
    /// The commit it ran before it joined, when the log knew it.
    pub previous: Option<String>,
    pub admitted: Option<i64>,
    /// Its first report on the commit, whatever it said.
    pub reported: Option<i64>,
    /// Its first clean report on the commit.
    pub clean: Option<i64>,
    pub failure: Option<Failure>,
    /// Drifted after applying the commit (resource, report).
    pub drifted: Option<(String, String)>,
    /// A resume forgave its failures, now and later.
    pub forgiven: bool,
}

impl Member {
    pub fn new(wave: u32, bucket: i64, seen: i64, interval_s: i64) -> Member {
        Member {
            wave,
            bucket,
            seen,
            interval_s,
            previous: None,
            admitted: None,
            reported: None,
            clean: None,
            failure: None,
            drifted: None,
            forgiven: false,
        }
    }

    /// Reported on the commit, or counted failed for missing its deadline.
    pub fn settled(&self) -> bool {
        self.reported.is_some() || self.failure.is_some()
    }

    /// Heard from within two of its intervals (and half a minute, for a
    /// run's own length on hosts with short intervals).
    pub fn alive(&self, now: i64) -> bool {
        now - self.seen <= self.silent_after()
    }

    fn silent_after(&self) -> i64 {
        2 * self.interval_s + ALIVE_GRACE_S
    }

    /// Whether `seen` should be written again: often enough that a host
    /// asking on every cycle stays alive, rarely enough that asking is
    /// mostly a read.
    pub fn seen_is_stale(&self, now: i64) -> bool {
        now - self.seen >= (self.interval_s / 2).clamp(1, 60)
    }

    /// Holds its wave: in it, not settled, and admitted or alive.
    fn pending(&self, now: i64) -> bool {
        !self.settled() && (self.admitted.is_some() || self.alive(now))
    }

    /// Since when it holds a wave: admitted, or its wave opened.
    pub fn holding_since(&self, wave_opened: i64) -> i64 {
        self.admitted.unwrap_or(wave_opened)
    }

    fn counts_failed(&self) -> bool {
        self.failure.is_some() && !self.forgiven
    }

    fn counts_drifted(&self) -> bool {
        self.drifted.is_some() && !self.forgiven
    }
}

/// One commit's rollout in one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub environment: String,
    pub commit: String,
    pub policy: Policy,
    pub phase: Phase,
    /// The open wave (0 is the canary).
    pub wave: u32,
    pub wave_opened: i64,
    pub halted_by: Option<HaltedBy>,
    pub superseded_by: Option<String>,
    /// Who resumed or aborted it, and when.
    pub note: Option<String>,
    /// With `on_halt: rollback`, once halted: what the hosts that applied
    /// it converge instead.
    pub rollback_to: Option<String>,
    /// The rollback's target, fixed when the rollout started: the commit
    /// every host of the environment ran then, else the last whose rollout
    /// completed; none sends each host back to its own previous commit.
    pub fallback: Option<String>,
    /// The earliest time at which time alone may change an answer (a soak
    /// ends, a deadline passes, a silent host stops holding a wave).
    pub next_check: Option<i64>,
    /// What holds the next wave, as of the last step.
    pub holding: Holding,
    pub members: BTreeMap<String, Member>,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// A host that fetched the commit asks whether it may apply it.
    Ask { host: String },
    /// A host's run report on the commit.
    Report {
        host: String,
        report: String,
        outcome: Outcome,
        interval_s: Option<i64>,
    },
    /// Time passed (deadlines, soaks).
    Tick,
    /// An operator forgives the failures seen so far.
    Resume { who: String },
    /// An operator stops the rollout for good.
    Abort { who: String },
    /// A newer commit (a descendant, or the ref's after a force push)
    /// takes over.
    Supersede { by: String },
}

/// What a run of the commit came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Clean,
    /// A resource failed (the first one, and its error).
    Failed {
        resource: String,
        error: String,
    },
    /// The commit does not compile for the host.
    Refused {
        error: String,
    },
    /// A run after applying the commit corrected drift.
    Drifted {
        resource: String,
    },
}

/// The gate's answer to a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub admitted: bool,
    pub state: Phase,
    pub wave: u32,
    pub host_wave: Option<u32>,
    pub reason: String,
    /// When to ask again, in seconds, when not admitted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_s: Option<u64>,
    /// Converge this commit instead of the one asked about: the rollout
    /// halted under `on_halt: rollback`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rollback_to: Option<String>,
}

/// What a step did.
#[derive(Debug, Default)]
pub struct Step {
    pub answer: Option<Answer>,
    /// The rollout halted in this step.
    pub halted: bool,
    /// The rollout's own fields changed.
    pub changed: bool,
    /// Members added or changed.
    pub touched: Vec<String>,
    /// An operator's action could not be taken: why.
    pub refused: Option<String>,
    /// Hosts that should ask again now rather than at their next slot: a
    /// wave that includes them opened, the rollout they applied halted
    /// with a rollback, or an operator resumed it (SPEC §9).
    pub wake: Vec<String>,
}

/// What holds the next wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// Hosts of the open waves that have not reported: the first few of
    /// them, with since when, and how many in all.
    Reports {
        hosts: Vec<(String, i64)>,
        count: usize,
    },
    /// Soaking until this time.
    Soak(i64),
    /// Nothing: the last wave is open, or the rollout is not rolling.
    Nothing,
}

impl Rollout {
    /// A rollout starting now with the hosts known alive: (name, seen,
    /// interval, the commit it runs).
    pub fn start(
        environment: &str,
        commit: &str,
        policy: Policy,
        hosts: &[(String, i64, i64, Option<String>)],
        fallback: Option<String>,
        now: i64,
    ) -> Rollout {
        let names: Vec<&str> = hosts.iter().map(|h| h.0.as_str()).collect();
        let waves: BTreeMap<&str, u32> = policy.assign(environment, &names).into_iter().collect();
        let members = hosts
            .iter()
            .map(|(host, seen, every, previous)| {
                let mut m = Member::new(
                    waves[host.as_str()],
                    bucket(environment, host),
                    *seen,
                    *every,
                );
                m.previous.clone_from(previous);
                (host.clone(), m)
            })
            .collect();
        Rollout {
            environment: environment.to_owned(),
            commit: commit.to_owned(),
            policy,
            phase: Phase::Rolling,
            wave: 0,
            wave_opened: now,
            halted_by: None,
            superseded_by: None,
            note: None,
            rollback_to: None,
            fallback,
            next_check: None,
            holding: Holding::Nothing,
            members,
        }
    }

    fn deadline_s(&self) -> i64 {
        i64::try_from(self.policy.deadline_s).unwrap_or(i64::MAX)
    }

    fn soak_s(&self) -> i64 {
        i64::try_from(self.policy.soak_s).unwrap_or(i64::MAX)
    }

    /// The wave of a host that was not a member: by its place among the
    /// members now, so a newcomer never lands in a wave already settled
    /// unless its bucket puts it there.
    fn wave_for_newcomer(&self, host: &str) -> u32 {
        if self.policy.is_canary(host) {
            return 0;
        }
        let b = bucket(&self.environment, host);
        let others = self.members.values().filter(|m| m.wave > 0);
        let (below, n) = others.fold((0u64, 0u64), |(below, n), m| {
            (below + u64::from(m.bucket < b), n + 1)
        });
        self.policy.wave_of_rank(below, n + 1)
    }

    /// Why the next wave is not open now (read only).
    pub fn holding(&self, now: i64) -> Holding {
        look_ahead(self, now).1
    }

    /// When the open waves' soak ends: `soak` after the last first clean
    /// report of their members, and never sooner than `soak` after the
    /// newest wave opened when it has hosts (they may all be silent);
    /// `None` when the open waves have no member.
    fn soak_until(&self) -> Option<i64> {
        let open = self.members.values().filter(|m| m.wave <= self.wave);
        let mut any = false;
        let mut last = i64::MIN;
        for m in open {
            any = true;
            if m.wave == self.wave {
                last = last.max(self.wave_opened);
            }
            if let Some(t) = m.clean {
                last = last.max(t);
            }
        }
        any.then(|| last.saturating_add(self.soak_s()))
    }
}

/// Takes one event at time `now`.
pub fn step(r: &mut Rollout, event: Event, now: i64) -> Step {
    #[cfg(debug_assertions)]
    let before = r.clone();
    if let Some(out) = quick_step(r, &event, now) {
        // Test builds decide the long way too: a shortcut that ever
        // disagreed would change what the fleet does.
        #[cfg(debug_assertions)]
        {
            let mut full = before;
            let long = full_step(&mut full, event, now);
            assert_eq!(
                (&r.members, r.phase, r.wave, &r.holding, &out.answer),
                (
                    &full.members,
                    full.phase,
                    full.wave,
                    &full.holding,
                    &long.answer
                ),
                "the quick step disagrees with the full one"
            );
            assert!(
                full.next_check
                    .is_none_or(|t| r.next_check.is_some_and(|q| q <= t)),
                "the quick step's next check {:?} is later than {:?}",
                r.next_check,
                full.next_check
            );
        }
        return out;
    }
    full_step(r, event, now)
}

/// The two events that come by the thousand while a wave runs, when
/// nothing else can follow from them (no deadline or soak due, other
/// hosts still holding the wave): a host of an open wave admitted, an
/// admitted host's first clean report. Each touches one member and the
/// count of hosts holding the wave, instead of every member.
fn quick_step(r: &mut Rollout, event: &Event, now: i64) -> Option<Step> {
    if r.phase != Phase::Rolling || r.next_check.is_none_or(|t| now >= t) {
        return None;
    }
    let Holding::Reports { hosts, count } = &mut r.holding else {
        return None;
    };
    let mut out = Step::default();
    match event {
        Event::Ask { host } => {
            let m = r.members.get_mut(host)?;
            let listed = hosts.iter().any(|(h, _)| h == host);
            if m.wave > r.wave || m.admitted.is_some() || m.settled() || !m.alive(now) || listed {
                return None;
            }
            m.admitted = Some(now);
            m.seen = now;
            let due = now.saturating_add(i64::try_from(r.policy.deadline_s).unwrap_or(i64::MAX));
            r.next_check = r.next_check.map(|t| t.min(due));
            out.touched.push(host.clone());
            out.answer = Some(answer(r, host, &r.members[host], &Holding::Nothing, now));
        }
        Event::Report {
            host,
            outcome: Outcome::Clean,
            interval_s,
            ..
        } => {
            let m = r.members.get_mut(host)?;
            let listed = hosts.iter().any(|(h, _)| h == host);
            if m.wave > r.wave || m.admitted.is_none() || m.settled() || *count < 2 || listed {
                return None;
            }
            m.reported = Some(now);
            m.clean = Some(now);
            m.seen = now;
            if let Some(every) = interval_s.filter(|s| *s > 0) {
                m.interval_s = every;
            }
            *count -= 1;
            out.touched.push(host.clone());
        }
        _ => return None,
    }
    out.changed = true;
    Some(out)
}

fn full_step(r: &mut Rollout, event: Event, now: i64) -> Step {
    let mut out = Step::default();
    match event {
        Event::Ask { host } => {
            ask(r, &host, now, &mut out);
        }
        Event::Report {
            host,
            report,
            outcome,
            interval_s,
        } => reported(r, &host, &report, outcome, interval_s, now, &mut out),
        Event::Tick => {}
        Event::Resume { who } => {
            if r.phase == Phase::Halted {
                for (host, m) in &mut r.members {
                    if (m.failure.is_some() || m.drifted.is_some()) && !m.forgiven {
                        m.forgiven = true;
                        out.touched.push(host.clone());
                    }
                }
                // Those waiting for the wave, and those sent back by a
                // rollback, go on with the commit.
                let rolled_back = r.rollback_to.is_some();
                out.wake.extend(
                    r.members
                        .iter()
                        .filter(|(_, m)| {
                            m.wave <= r.wave
                                && (!m.settled() || (rolled_back && m.admitted.is_some()))
                        })
                        .map(|(h, _)| h.clone()),
                );
                r.phase = Phase::Rolling;
                r.rollback_to = None;
                r.note = Some(format!("resumed by {who} at {}", rfc3339(now)));
                out.changed = true;
            } else {
                out.refused = Some(format!(
                    "the rollout of {} in {} is {}, not halted: nothing to resume",
                    short(&r.commit),
                    r.environment,
                    r.phase.as_str()
                ));
            }
        }
        Event::Abort { who } => {
            if r.phase.in_motion() {
                r.phase = Phase::Aborted;
                r.note = Some(format!("aborted by {who} at {}", rfc3339(now)));
                out.changed = true;
            } else {
                out.refused = Some(format!(
                    "the rollout of {} in {} is {}: nothing to abort",
                    short(&r.commit),
                    r.environment,
                    r.phase.as_str()
                ));
            }
        }
        Event::Supersede { by } => {
            if r.phase.in_motion() {
                r.phase = Phase::Superseded;
                r.superseded_by = Some(by);
                r.rollback_to = None;
                out.changed = true;
            }
        }
    }
    settle(r, now, &mut out);
    out
}

/// Deadlines, halts, waves opening, completion: everything time and the
/// members' reports decide. Runs after every event, in a few passes over
/// the members (a rollout may have tens of thousands).
fn settle(r: &mut Rollout, now: i64, out: &mut Step) {
    if r.phase == Phase::Rolling {
        // Deadlines, and the failures and drifts that count.
        let deadline = r.deadline_s();
        let (mut failed, mut drifted) = (0, 0);
        for (host, m) in &mut r.members {
            if let Some(admitted) = m.admitted
                && !m.settled()
                && now >= admitted.saturating_add(deadline)
            {
                m.failure = Some(Failure {
                    kind: "deadline".into(),
                    resource: "the run".into(),
                    error: format!(
                        "admitted at {}, no report within {}",
                        rfc3339(admitted),
                        humantime::format_duration(std::time::Duration::from_secs(
                            r.policy.deadline_s
                        ))
                    ),
                    report: String::new(),
                    at_unix: now,
                });
                out.touched.push(host.clone());
            }
            failed += usize::from(m.counts_failed());
            drifted += usize::from(m.counts_drifted());
        }
        halt_if_due(r, failed, drifted, now, out);
    }
    while r.phase == Phase::Rolling {
        if r.members
            .values()
            .any(|m| m.wave <= r.wave && m.pending(now))
        {
            break;
        }
        if r.wave >= r.policy.last_wave() {
            r.phase = Phase::Done;
            out.changed = true;
            break;
        }
        if let Some(until) = r.soak_until()
            && now < until
        {
            break;
        }
        r.wave += 1;
        r.wave_opened = now;
        out.changed = true;
        let opened = r.wave;
        out.wake.extend(
            r.members
                .iter()
                .filter(|(_, m)| m.wave == opened && m.admitted.is_none() && !m.settled())
                .map(|(h, _)| h.clone()),
        );
    }
    let (next, holding) = look_ahead(r, now);
    if next != r.next_check || holding != r.holding {
        r.next_check = next;
        r.holding = holding;
        out.changed = true;
    }
}

/// Halts when `halt_on` says so of the `failed` and `drifted` members
/// that count; the culprit is the newest of them.
fn halt_if_due(r: &mut Rollout, failed: usize, drifted: usize, now: i64, out: &mut Step) {
    let halt_on = r.policy.halt_on;
    let condition = if halt_on.failed > 0 && failed >= halt_on.failed as usize {
        "failed"
    } else if halt_on.drift_after_apply > 0 && drifted >= halt_on.drift_after_apply as usize {
        "drift_after_apply"
    } else {
        return;
    };
    let culprit = if condition == "failed" {
        r.members
            .iter()
            .filter(|(_, m)| m.counts_failed())
            .filter_map(|(h, m)| m.failure.as_ref().map(|f| (h, f)))
            .max_by_key(|(h, f)| (f.at_unix, (*h).clone()))
            .map(|(h, f)| HaltedBy {
                host: h.clone(),
                report: f.report.clone(),
                resource: f.resource.clone(),
                error: f.error.clone(),
                condition: condition.into(),
                at_unix: now,
            })
    } else {
        r.members
            .iter()
            .filter(|(_, m)| m.counts_drifted())
            .filter_map(|(h, m)| m.drifted.as_ref().map(|d| (h, d)))
            .next_back()
            .map(|(h, (resource, report))| HaltedBy {
                host: h.clone(),
                report: report.clone(),
                resource: resource.clone(),
                error: "drifted after the commit was applied".into(),
                condition: condition.into(),
                at_unix: now,
            })
    };
    r.phase = Phase::Halted;
    r.halted_by = culprit;
    if r.policy.on_halt == OnHalt::Rollback {
        r.rollback_to = Some(r.fallback.clone().unwrap_or_default());
        // Those that applied it (or are applying it) go back now.
        out.wake.extend(
            r.members
                .iter()
                .filter(|(_, m)| m.admitted.is_some())
                .map(|(h, _)| h.clone()),
        );
    }
    out.halted = true;
    out.changed = true;
}

/// In one pass: the earliest time at which time alone changes something
/// (a deadline, a silent host no longer holding its wave, a soak's end),
/// and what holds the next wave now.
fn look_ahead(r: &Rollout, now: i64) -> (Option<i64>, Holding) {
    if r.phase != Phase::Rolling {
        return (None, Holding::Nothing);
    }
    let deadline = r.deadline_s();
    let mut next: Option<i64> = None;
    let mut at = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
    let mut first: Vec<(i64, &str)> = Vec::with_capacity(NAMED + 1);
    let mut count = 0;
    for (h, m) in &r.members {
        if m.settled() {
            continue;
        }
        if let Some(admitted) = m.admitted {
            at(admitted.saturating_add(deadline));
        } else if m.wave <= r.wave && m.alive(now) {
            at(m.seen + m.silent_after() + 1);
        }
        if m.wave <= r.wave && m.pending(now) {
            count += 1;
            let key = (m.holding_since(r.wave_opened), h.as_str());
            if first.len() < NAMED || key < first[NAMED - 1] {
                let i = first.partition_point(|k| *k < key);
                first.insert(i, key);
                first.truncate(NAMED);
            }
        }
    }
    let last = r.wave >= r.policy.last_wave();
    let holding = if count > 0 && !last {
        Holding::Reports {
            hosts: first
                .into_iter()
                .map(|(since, h)| (h.to_owned(), since))
                .collect(),
            count,
        }
    } else if count == 0
        && !last
        && let Some(until) = r.soak_until()
        && now < until
    {
        // Nobody holds the next wave: it opens when the soak ends.
        at(until);
        Holding::Soak(until)
    } else {
        Holding::Nothing
    };
    (next, holding)
}

fn ask(r: &mut Rollout, host: &str, now: i64, out: &mut Step) {
    let newcomer = !r.members.contains_key(host);
    if newcomer {
        let wave = r.wave_for_newcomer(host);
        r.members.insert(
            host.to_owned(),
            Member::new(wave, bucket(&r.environment, host), now, DEFAULT_INTERVAL_S),
        );
        out.touched.push(host.to_owned());
    }
    // Deadlines and waves first: a question after a soak ends is answered
    // with the wave it opened.
    settle(r, now, out);
    let m = r.members.get_mut(host).expect("a member now");
    if m.seen_is_stale(now) || newcomer {
        m.seen = now;
        if !newcomer {
            out.touched.push(host.to_owned());
        }
    }
    let open = r.phase == Phase::Done || (r.phase == Phase::Rolling && m.wave <= r.wave);
    if open && m.admitted.is_none() && m.reported.is_none() {
        m.admitted = Some(now);
        m.seen = now;
        out.touched.push(host.to_owned());
    }
    let m = &r.members[host];
    let waiting = r.phase == Phase::Rolling
        && m.wave > r.wave
        && m.admitted.is_none()
        && m.reported.is_none();
    let holding = if waiting {
        r.holding.clone()
    } else {
        Holding::Nothing
    };
    out.answer = Some(answer(r, host, m, &holding, now));
}

/// The answer to `host`, a member, from the rollout's state and what
/// holds its next wave. It admits nobody: [`step`] marks a host admitted
/// before answering it yes.
pub fn answer(r: &Rollout, host: &str, m: &Member, holding: &Holding, now: i64) -> Answer {
    let wave = m.wave;
    let has_it = m.admitted.is_some() || m.reported.is_some();
    let answer = |admitted: bool, reason: String, retry: Option<i64>| Answer {
        admitted,
        state: r.phase,
        wave: r.wave,
        host_wave: Some(wave),
        reason,
        retry_after_s: retry.map(|s| u64::try_from(s.max(1)).unwrap_or(1)),
        rollback_to: None,
    };
    let every = m.interval_s;
    match r.phase {
        Phase::Halted | Phase::Aborted if has_it && r.rollback_to.is_some() => {
            let to = match r.rollback_to.as_deref() {
                Some("") | None => m.previous.clone().unwrap_or_default(),
                Some(to) => to.to_owned(),
            };
            let mut a = answer(
                false,
                format!("rollback of {}: {}", short(&r.commit), r.phase.as_str()),
                None,
            );
            if to.is_empty() {
                a.reason = format!(
                    "the rollout of {} is {} and set to roll back, but no earlier commit of {host} is known: keeping it",
                    short(&r.commit),
                    r.phase.as_str()
                );
                a.admitted = true;
            }
            a.rollback_to = (!to.is_empty()).then_some(to);
            a
        }
        _ if has_it => answer(true, format!("admitted in wave {wave}"), None),
        Phase::Superseded => answer(
            false,
            format!(
                "superseded by {}; this host takes it after its next fetch",
                short(r.superseded_by.as_deref().unwrap_or(""))
            ),
            Some(60),
        ),
        Phase::Aborted => answer(
            false,
            format!(
                "the rollout was aborted ({})",
                r.note.clone().unwrap_or_default()
            ),
            Some(every),
        ),
        Phase::Halted => {
            let why = r.halted_by.as_ref().map_or_else(String::new, |h| {
                format!(
                    ": {} {} on {} ({})",
                    h.condition, h.resource, h.host, h.error
                )
            });
            answer(false, format!("the rollout is halted{why}"), Some(every))
        }
        Phase::Done => answer(true, format!("admitted in wave {wave}"), None),
        Phase::Rolling if wave <= r.wave => answer(true, format!("admitted in wave {wave}"), None),
        Phase::Rolling => match holding {
            Holding::Reports { hosts, count } => {
                let first = hosts.first().map_or("", |(h, _)| h.as_str());
                let others = if *count > 1 {
                    format!(" and {} more", count - 1)
                } else {
                    String::new()
                };
                // The wave opens when a report comes: no use asking much
                // more often, nor later than a deadline.
                let retry = r
                    .next_check
                    .map_or(300, |t| t - now)
                    .clamp(5, (every / 4).clamp(60, 600));
                answer(
                    false,
                    format!(
                        "wave {wave} opens after every host of wave {} has reported on this commit ({first}{others} not yet)",
                        r.wave
                    ),
                    Some(retry),
                )
            }
            Holding::Soak(until) => answer(
                false,
                format!(
                    "wave {wave} opens after wave {} soaks, in {} s",
                    r.wave,
                    until - now
                ),
                Some(until - now),
            ),
            Holding::Nothing => answer(false, format!("wave {wave} is not open"), Some(60)),
        },
    }
}

fn reported(
    r: &mut Rollout,
    host: &str,
    report: &str,
    outcome: Outcome,
    interval_s: Option<i64>,
    now: i64,
    out: &mut Step,
) {
    if !r.members.contains_key(host) {
        // A host that took the commit without asking (it refused it, or
        // proceeded with the log out of reach) is part of the rollout.
        let wave = r.wave_for_newcomer(host);
        r.members.insert(
            host.to_owned(),
            Member::new(wave, bucket(&r.environment, host), now, DEFAULT_INTERVAL_S),
        );
    }
    let m = r.members.get_mut(host).expect("a member now");
    m.seen = now;
    if let Some(every) = interval_s.filter(|s| *s > 0) {
        m.interval_s = every;
    }
    let first = m.reported.is_none();
    m.reported.get_or_insert(now);
    let failure = |kind: &str, resource: String, error: String| Failure {
        kind: kind.into(),
        resource,
        error,
        report: report.to_owned(),
        at_unix: now,
    };
    match outcome {
        Outcome::Clean => {
            m.clean.get_or_insert(now);
        }
        Outcome::Failed { resource, error } => {
            if m.failure.is_none() || m.forgiven {
                m.failure = Some(failure("failed", resource, error));
            }
        }
        Outcome::Refused { error } => {
            if m.failure.is_none() || m.forgiven {
                m.failure = Some(failure(
                    "refused",
                    format!("commit {}", short(&r.commit)),
                    error,
                ));
            }
        }
        // Drift on the run that applies the commit is the commit's own
        // change; only later runs count.
        Outcome::Drifted { resource } if !first => {
            m.clean.get_or_insert(now);
            if m.drifted.is_none() {
                m.drifted = Some((resource, report.to_owned()));
            }
        }
        Outcome::Drifted { .. } => {
            m.clean.get_or_insert(now);
        }
    }
    out.touched.push(host.to_owned());
}

/// How many of the hosts holding a wave are named.
const NAMED: usize = 10;

/// A host's interval until it says otherwise.
pub const DEFAULT_INTERVAL_S: i64 = 30 * 60;
/// Beyond two intervals, how long a silent host still counts as alive.
const ALIVE_GRACE_S: i64 = 30;

pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

fn rfc3339(unix: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0)),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{HaltOn, Wave};

    const T: i64 = 1_000_000;

    /// web-1 the canary, then everyone; soak 10 min, deadline 30 min.
    fn rollout(hosts: &[&str], on_halt: OnHalt) -> Rollout {
        let policy = Policy {
            canary: vec!["web-1".into()],
            waves: vec![Wave::Percent(100.0)],
            soak_s: 600,
            deadline_s: 1800,
            halt_on: HaltOn::default(),
            on_halt,
        };
        let known: Vec<(String, i64, i64, Option<String>)> = hosts
            .iter()
            .map(|h| ((*h).to_owned(), T - 60, 300, Some("c0".to_owned())))
            .collect();
        let mut r = Rollout::start("prod", "c1", policy, &known, Some("c0".into()), T);
        step(&mut r, Event::Tick, T);
        r
    }

    fn ask(r: &mut Rollout, host: &str, now: i64) -> Answer {
        step(r, Event::Ask { host: host.into() }, now)
            .answer
            .unwrap()
    }

    fn report(r: &mut Rollout, host: &str, outcome: Outcome, now: i64) -> Step {
        step(
            r,
            Event::Report {
                host: host.into(),
                report: format!("{host}-{now}"),
                outcome,
                interval_s: Some(300),
            },
            now,
        )
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            resource: "exec:migrate".into(),
            error: "exit 1".into(),
        }
    }

    #[test]
    fn the_soak_counts_from_the_first_clean_report_and_later_reports_do_not_extend_it() {
        let mut r = rollout(&["web-1", "web-2"], OnHalt::Hold);
        assert!(ask(&mut r, "web-1", T).admitted);
        assert!(!ask(&mut r, "web-2", T + 1).admitted);
        report(&mut r, "web-1", Outcome::Clean, T + 10);
        // The canary reports every minute: the soak still ends 600 s after
        // its first clean report.
        for minute in 1..10 {
            report(&mut r, "web-1", Outcome::Clean, T + 10 + minute * 60);
            assert!(!ask(&mut r, "web-2", T + 10 + minute * 60 + 1).admitted);
        }
        let a = ask(&mut r, "web-2", T + 609);
        assert!(!a.admitted && a.reason.contains("soaks, in 1 s"), "{a:?}");
        assert!(ask(&mut r, "web-2", T + 610).admitted);
    }

    #[test]
    fn an_admitted_host_silent_past_its_deadline_halts_the_rollout_and_is_named() {
        let mut r = rollout(&["web-1", "web-2"], OnHalt::Hold);
        assert!(ask(&mut r, "web-1", T).admitted);
        assert_eq!(r.next_check, Some(T + 1800));
        let s = step(&mut r, Event::Tick, T + 1799);
        assert!(!s.halted);
        assert_eq!(
            r.holding(T + 1799),
            Holding::Reports {
                hosts: vec![("web-1".into(), T)],
                count: 1
            }
        );
        let s = step(&mut r, Event::Tick, T + 1800);
        assert!(s.halted);
        let by = r.halted_by.clone().unwrap();
        assert_eq!(by.host, "web-1");
        assert!(by.error.contains("no report within 30m"), "{by:?}");
        let a = ask(&mut r, "web-2", T + 1801);
        assert!(!a.admitted && a.reason.contains("halted"), "{a:?}");
    }

    #[test]
    fn resume_forgives_the_same_host_failing_again_but_not_another() {
        let mut r = rollout(&["web-1", "web-2", "web-3"], OnHalt::Hold);
        r.policy.soak_s = 0;
        assert!(ask(&mut r, "web-1", T).admitted);
        assert!(report(&mut r, "web-1", failed(), T + 5).halted);
        assert!(
            step(&mut r, Event::Resume { who: "ops".into() }, T + 10)
                .refused
                .is_none()
        );
        assert_eq!(r.phase, Phase::Rolling);
        // The canary fails again on its routine runs: forgiven.
        assert!(!report(&mut r, "web-1", failed(), T + 300).halted);
        assert_eq!(r.phase, Phase::Rolling);
        assert!(ask(&mut r, "web-2", T + 301).admitted);
        assert!(ask(&mut r, "web-3", T + 302).admitted);
        report(&mut r, "web-3", Outcome::Clean, T + 310);
        // Another host's failure counts.
        assert!(report(&mut r, "web-2", failed(), T + 320).halted);
        assert_eq!(r.halted_by.as_ref().unwrap().host, "web-2");
        // Nothing to resume twice, nothing to abort once aborted.
        step(&mut r, Event::Abort { who: "ops".into() }, T + 400);
        assert!(
            step(&mut r, Event::Resume { who: "ops".into() }, T + 401)
                .refused
                .is_some()
        );
    }

    #[test]
    fn a_rollback_sends_the_hosts_that_applied_it_back_and_keeps_the_others_waiting() {
        let mut r = rollout(&["web-1", "web-2"], OnHalt::Rollback);
        assert!(ask(&mut r, "web-1", T).admitted);
        assert!(report(&mut r, "web-1", failed(), T + 5).halted);
        let a = ask(&mut r, "web-1", T + 60);
        assert_eq!(a.rollback_to.as_deref(), Some("c0"));
        assert!(a.reason.contains("rollback of c1: halted"), "{a:?}");
        let b = ask(&mut r, "web-2", T + 61);
        assert!(!b.admitted && b.rollback_to.is_none(), "{b:?}");
        // Resumed: the commit goes on, nobody rolls back.
        step(&mut r, Event::Resume { who: "ops".into() }, T + 100);
        assert!(ask(&mut r, "web-1", T + 101).admitted);
    }

    #[test]
    fn the_gate_names_whom_to_wake_when_a_wave_opens_on_a_rollback_and_on_a_resume() {
        let mut r = rollout(&["web-1", "web-2", "web-3"], OnHalt::Rollback);
        r.policy.soak_s = 60;
        assert!(ask(&mut r, "web-1", T).admitted);
        assert!(!ask(&mut r, "web-2", T + 1).admitted);
        let clean = report(&mut r, "web-1", Outcome::Clean, T + 10);
        assert!(clean.wake.is_empty(), "soaking: {:?}", clean.wake);
        // The soak ends with nobody asking: the tick opens wave 1 and
        // names its hosts, those that asked and those that did not.
        assert!(step(&mut r, Event::Tick, T + 69).wake.is_empty());
        let opened = step(&mut r, Event::Tick, T + 70);
        assert_eq!(r.wave, 1);
        assert_eq!(opened.wake, ["web-2", "web-3"]);
        assert!(ask(&mut r, "web-2", T + 71).admitted);
        // web-2 fails: the rollout halts and those admitted roll back.
        let halted = report(&mut r, "web-2", failed(), T + 80);
        assert!(halted.halted);
        assert_eq!(halted.wake, ["web-1", "web-2"]);
        // Resumed: everyone of the open waves goes on with the commit.
        let resumed = step(&mut r, Event::Resume { who: "ops".into() }, T + 90);
        assert_eq!(resumed.wake, ["web-1", "web-2", "web-3"]);
        // Nothing more to open: a later tick wakes nobody.
        assert!(step(&mut r, Event::Tick, T + 200).wake.is_empty());
    }

    #[test]
    fn a_silent_host_holds_its_wave_for_two_intervals_then_no_longer() {
        let mut r = rollout(&["web-1", "web-2", "web-3"], OnHalt::Hold);
        r.policy.soak_s = 0;
        // web-1, the canary, last seen at T - 60 with a 300 s interval,
        // never asks: it holds wave 0 until T - 60 + 630.
        assert!(!ask(&mut r, "web-2", T).admitted);
        assert!(!ask(&mut r, "web-2", T + 569).admitted);
        assert_eq!(r.next_check, Some(T - 60 + 631));
        assert!(ask(&mut r, "web-2", T + 572).admitted);
    }

    #[test]
    fn a_host_that_was_not_there_joins_by_its_place_and_a_refusal_is_a_failure() {
        let mut r = rollout(&["web-1", "web-2"], OnHalt::Hold);
        let a = ask(&mut r, "new-9", T);
        assert_eq!(a.host_wave, Some(1));
        assert!(r.members.contains_key("new-9"));
        // A host that took the commit without asking and refused it.
        let s = report(
            &mut r,
            "web-7",
            Outcome::Refused {
                error: "roles/web/role.yaml:3:11: undefined variable".into(),
            },
            T + 5,
        );
        assert!(s.halted);
        let by = r.halted_by.unwrap();
        assert_eq!(
            (by.host.as_str(), by.resource.as_str()),
            ("web-7", "commit c1")
        );
    }
}
