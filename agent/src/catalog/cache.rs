//! The compiled catalog, kept in the state directory so that a run whose
//! inputs did not change skips reading and rendering the manifests.
//!
//! The key covers every input of a compile: tend's version and the very
//! binary running, the host name, the `--env` asked for, the facts, the
//! YAML limits, the repository's place, the names of the environment files,
//! and the bytes of every file the compile read (environments, roles,
//! templates, sources). Those bytes are read and hashed on every run; a
//! file that became a symlink, or that cannot be read, is a miss. A stale
//! catalog is therefore never used: when in doubt, tend compiles.
//!
//! The format is tend's own (length-prefixed fields), written atomically;
//! anything that does not decode is a miss.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Catalog;
use crate::facts::Facts;
use crate::fsutil::{self, FsError, TempLog};
use crate::manifest::diagnostic::Location;
use crate::manifest::kinds::Kind;
use crate::resource::directory::DirectorySpec;
use crate::resource::exec::ExecSpec;
use crate::resource::file::FileSpec;
use crate::resource::group::GroupSpec;
use crate::resource::package::{Ensure, PackageSpec};
use crate::resource::service::ServiceSpec;
use crate::resource::symlink::SymlinkSpec;
use crate::resource::user::UserSpec;
use crate::resource::{Desired, Mode, Resource, ResourceId};

pub const FILE: &str = "catalog.cache";
const MAGIC: &[u8] = b"tend catalog cache 1\n";

/// What a catalog is compiled from, besides the repository's files.
pub struct Key {
    header: Vec<u8>,
    root: PathBuf,
}

impl Key {
    pub fn new(repo: &Path, environment: Option<&str>, facts: &Facts) -> Option<Key> {
        let root = fs_err::canonicalize(repo).ok()?;
        let exe = fs_err::metadata("/proc/self/exe").ok()?;
        let mut w = Writer::default();
        w.str(env!("CARGO_PKG_VERSION"));
        for n in [exe.dev(), exe.ino(), exe.size()] {
            w.u64(n);
        }
        w.u64(u64::try_from(exe.mtime()).unwrap_or(0));
        w.u64(u64::try_from(exe.mtime_nsec()).unwrap_or(0));
        w.opt_str(environment);
        w.bytes(&serde_json::to_vec(facts).ok()?);
        w.u64(crate::manifest::node::limit_factor() as u64);
        w.path(&root);
        w.strs(&environment_files(&root)?);
        Some(Key { header: w.0, root })
    }
}

/// The names of `manifests/*.yaml` and `*.yml`, sorted: a new environment
/// file can change which entry a host matches.
fn environment_files(root: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = fs_err::read_dir(root.join("manifests"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    names.sort();
    Some(names)
}

/// The digest of an input file, or `None` when it is not a regular file
/// reached without symlinks from the root.
fn input_digest(root: &Path, rel: &Path) -> Option<[u8; 32]> {
    let path = root.join(rel);
    if fs_err::canonicalize(&path).ok()? != path {
        return None;
    }
    fsutil::sha256_nofollow(&path).ok()
}

/// The cached catalog, when the key and every input are unchanged.
pub fn load(state_dir: &Path, key: &Key) -> Option<Catalog> {
    let mut r = Reader::open(&state_dir.join(FILE))?;
    if r.take(MAGIC.len())? != MAGIC || r.bytes()? != key.header {
        return None;
    }
    let inputs = r.count()?;
    let mut paths = BTreeSet::new();
    for _ in 0..inputs {
        let rel = r.path()?;
        let digest = r.bytes()?;
        if input_digest(&key.root, &rel)?.as_slice() != digest {
            return None;
        }
        paths.insert(rel);
    }
    let catalog = decode(&mut r, paths);
    if catalog.is_none() {
        tracing::warn!(file = %state_dir.join(FILE).display(), "the catalog cache does not decode; compiling");
    }
    catalog
}

/// Keeps `catalog` for the next run. Inputs that cannot be read back as
/// they were compiled (a symlink among them) leave nothing cached.
pub fn store(
    state_dir: &Path,
    key: &Key,
    catalog: &Catalog,
    temps: &TempLog,
) -> Result<(), FsError> {
    let path = state_dir.join(FILE);
    let mut w = Writer::default();
    w.0.extend_from_slice(MAGIC);
    w.bytes(&key.header);
    w.len(catalog.inputs.len());
    for rel in &catalog.inputs {
        let Some(digest) = input_digest(&key.root, rel) else {
            // Remove a stale cache rather than leave it for a later key match.
            return match fs_err::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        };
        w.path(rel);
        w.bytes(&digest);
    }
    encode(&mut w, catalog);
    fsutil::atomic_write(&path, &w.0, 0o600, None, None, temps)
}

fn encode(w: &mut Writer, c: &Catalog) {
    w.str(&c.host);
    w.str(&c.environment);
    w.strs(&c.roles);
    w.len(c.resources.len());
    for (r, digest) in c.resources.iter().zip(&c.digests) {
        w.u8(r.id.kind as u8);
        w.str(&r.id.name);
        w.str(&r.role);
        w.bool(r.sensitive);
        w.0.extend_from_slice(&digest.0);
        encode_desired(w, &r.desired);
    }
    for list in [&vec![c.order.clone()], &c.requires, &c.notifiers] {
        w.len(list.len());
        for items in list.iter() {
            w.len(items.len());
            for &i in items {
                w.len(i);
            }
        }
    }
}

fn encode_desired(w: &mut Writer, d: &Desired) {
    match d {
        Desired::File(f) => {
            w.path(&f.path);
            w.opt_bytes(f.content.as_deref());
            w.opt_str(f.from.as_deref());
            w.opt_u32(f.mode.map(|m| m.0));
            w.opt_str(f.owner.as_deref());
            w.opt_str(f.group.as_deref());
        }
        Desired::Directory(d) => {
            w.path(&d.path);
            w.bool(d.present);
            w.opt_u32(d.mode.map(|m| m.0));
            w.opt_str(d.owner.as_deref());
            w.opt_str(d.group.as_deref());
            w.bool(d.purge);
        }
        Desired::Symlink(s) => {
            w.path(&s.path);
            w.opt_path(s.target.as_deref());
        }
        Desired::Package(p) => {
            w.str(&p.name);
            w.u8(p.state as u8);
            w.opt_str(p.version.as_deref());
        }
        Desired::Service(s) => {
            w.str(&s.name);
            w.opt_bool(s.running);
            w.opt_bool(s.enabled);
        }
        Desired::User(u) => {
            w.str(&u.name);
            w.bool(u.present);
            w.opt_u32(u.uid);
            w.opt_str(u.group.as_deref());
            match &u.groups {
                Some(g) => {
                    w.u8(1);
                    w.strs(g);
                }
                None => w.u8(0),
            }
            w.opt_str(u.home.as_deref());
            w.bool(u.manage_home);
            w.opt_str(u.shell.as_deref());
            w.bool(u.system);
        }
        Desired::Group(g) => {
            w.str(&g.name);
            w.bool(g.present);
            w.opt_u32(g.gid);
            w.bool(g.system);
        }
        Desired::Exec(e) => {
            w.str(&e.name);
            w.str(&e.command);
            w.opt_path(e.creates.as_deref());
            w.opt_str(e.unless.as_deref());
            w.opt_str(e.onlyif.as_deref());
            w.bool(e.refresh_only);
            w.u64(e.timeout_secs);
            w.opt_path(e.cwd.as_deref());
        }
    }
}

fn decode(r: &mut Reader, inputs: BTreeSet<PathBuf>) -> Option<Catalog> {
    let host = r.str()?;
    let environment = r.str()?;
    let roles = r.strs()?;
    let n = r.count()?;
    // Where each resource was declared is not kept: only diagnostics need
    // it, and a catalog with errors is never cached.
    let nowhere = Location::new(&Arc::from(Path::new("(cached)")), Default::default());
    let mut resources = Vec::with_capacity(n);
    let mut digests = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = *Kind::ALL.get(usize::from(r.u8()?))?;
        let name = r.str()?;
        let role = r.str()?;
        let sensitive = r.bool()?;
        digests.push(crate::resource::Digest(r.take(32)?.try_into().ok()?));
        let desired = decode_desired(r, kind)?;
        resources.push(Resource {
            id: ResourceId::new(kind, name),
            origin: nowhere.clone(),
            role,
            desired,
            sensitive,
            require: Vec::new(),
            before: Vec::new(),
            notify: Vec::new(),
        });
    }
    let mut lists = Vec::with_capacity(3);
    for _ in 0..3 {
        let outer = r.count()?;
        let mut list = Vec::with_capacity(outer);
        for _ in 0..outer {
            let inner = r.count()?;
            let mut items = Vec::with_capacity(inner);
            for _ in 0..inner {
                let i = r.index()?;
                if i >= n {
                    return None;
                }
                items.push(i);
            }
            list.push(items);
        }
        lists.push(list);
    }
    let notifiers = lists.pop()?;
    let requires = lists.pop()?;
    let order = lists.pop()?.pop()?;
    if !r.done() || order.len() != n || requires.len() != n || notifiers.len() != n {
        return None;
    }
    Some(Catalog {
        host,
        environment,
        roles,
        resources,
        order,
        requires,
        notifiers,
        digests,
        inputs,
    })
}

fn decode_desired(r: &mut Reader, kind: Kind) -> Option<Desired> {
    Some(match kind {
        Kind::File | Kind::Flags => Desired::File(FileSpec {
            path: r.path()?,
            content: r.opt_bytes()?,
            from: r.opt_str()?,
            mode: r.opt_u32()?.map(Mode),
            owner: r.opt_str()?,
            group: r.opt_str()?,
        }),
        Kind::Directory => Desired::Directory(DirectorySpec {
            path: r.path()?,
            present: r.bool()?,
            mode: r.opt_u32()?.map(Mode),
            owner: r.opt_str()?,
            group: r.opt_str()?,
            purge: r.bool()?,
        }),
        Kind::Symlink => Desired::Symlink(SymlinkSpec {
            path: r.path()?,
            target: r.opt_path()?,
        }),
        Kind::Package => Desired::Package(PackageSpec {
            name: r.str()?,
            state: match r.u8()? {
                s if s == Ensure::Installed as u8 => Ensure::Installed,
                s if s == Ensure::Absent as u8 => Ensure::Absent,
                s if s == Ensure::Latest as u8 => Ensure::Latest,
                _ => return None,
            },
            version: r.opt_str()?,
        }),
        Kind::Service => Desired::Service(ServiceSpec {
            name: r.str()?,
            running: r.opt_bool()?,
            enabled: r.opt_bool()?,
        }),
        Kind::User => Desired::User(UserSpec {
            name: r.str()?,
            present: r.bool()?,
            uid: r.opt_u32()?,
            group: r.opt_str()?,
            groups: match r.u8()? {
                0 => None,
                1 => Some(r.strs()?),
                _ => return None,
            },
            home: r.opt_str()?,
            manage_home: r.bool()?,
            shell: r.opt_str()?,
            system: r.bool()?,
        }),
        Kind::Group => Desired::Group(GroupSpec {
            name: r.str()?,
            present: r.bool()?,
            gid: r.opt_u32()?,
            system: r.bool()?,
        }),
        Kind::Exec => Desired::Exec(ExecSpec {
            name: r.str()?,
            command: r.str()?,
            creates: r.opt_path()?,
            unless: r.opt_str()?,
            onlyif: r.opt_str()?,
            refresh_only: r.bool()?,
            timeout_secs: r.u64()?,
            cwd: r.opt_path()?,
        }),
    })
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, n: u8) {
        self.0.push(n);
    }
    fn u64(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    fn bool(&mut self, b: bool) {
        self.u8(u8::from(b));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn path(&mut self, p: &Path) {
        use std::os::unix::ffi::OsStrExt as _;
        self.bytes(p.as_os_str().as_bytes());
    }
    fn strs(&mut self, items: &[String]) {
        self.len(items.len());
        for s in items {
            self.str(s);
        }
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
            None => self.u8(0),
        }
    }
    fn opt_str(&mut self, s: Option<&str>) {
        self.opt_bytes(s.map(str::as_bytes));
    }
    fn opt_path(&mut self, p: Option<&Path>) {
        use std::os::unix::ffi::OsStrExt as _;
        self.opt_bytes(p.map(|p| p.as_os_str().as_bytes()));
    }
    fn opt_u32(&mut self, n: Option<u32>) {
        match n {
            Some(n) => {
                self.u8(1);
                self.u64(u64::from(n));
            }
            None => self.u8(0),
        }
    }
    fn opt_bool(&mut self, b: Option<bool>) {
        self.u8(match b {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }
}

/// Reads the cache file as a stream, so that a large catalog is not held
/// twice (file and decoded) at once.
struct Reader {
    input: std::io::BufReader<std::fs::File>,
    /// Bytes not read yet: no length read from a damaged file can ask for more.
    left: u64,
}

impl Reader {
    fn open(path: &Path) -> Option<Self> {
        let file = fs_err::File::open(path).ok()?.into_parts().0;
        let left = file.metadata().ok()?.len();
        Some(Self {
            input: std::io::BufReader::with_capacity(256 * 1024, file),
            left,
        })
    }
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        use std::io::Read as _;
        if n as u64 > self.left {
            return None;
        }
        let mut buf = vec![0; n];
        self.input.read_exact(&mut buf).ok()?;
        self.left -= n as u64;
        Some(buf)
    }
    fn done(&self) -> bool {
        self.left == 0
    }
    fn u8(&mut self) -> Option<u8> {
        use std::io::Read as _;
        let mut b = [0; 1];
        if self.left == 0 {
            return None;
        }
        self.input.read_exact(&mut b).ok()?;
        self.left -= 1;
        Some(b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        use std::io::Read as _;
        let mut b = [0; 8];
        if self.left < 8 {
            return None;
        }
        self.input.read_exact(&mut b).ok()?;
        self.left -= 8;
        Some(u64::from_le_bytes(b))
    }
    /// A number of items, each taking at least a byte: never more than
    /// the bytes left (a damaged file cannot make it allocate much).
    fn count(&mut self) -> Option<usize> {
        let n = self.u64()?;
        (n <= self.left).then(|| usize::try_from(n).ok()).flatten()
    }
    fn index(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }
    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.count()?;
        self.take(n)
    }
    fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    fn path(&mut self) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStringExt as _;
        Some(PathBuf::from(std::ffi::OsString::from_vec(self.bytes()?)))
    }
    fn strs(&mut self) -> Option<Vec<String>> {
        let n = self.count()?;
        (0..n).map(|_| self.str()).collect()
    }
    fn opt_bytes(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        match self.opt_bytes()? {
            None => Some(None),
            Some(b) => Some(Some(String::from_utf8(b).ok()?)),
        }
    }
    fn opt_path(&mut self) -> Option<Option<PathBuf>> {
        use std::os::unix::ffi::OsStringExt as _;
        Some(
            self.opt_bytes()?
                .map(|b| PathBuf::from(std::ffi::OsString::from_vec(b))),
        )
    }
    fn opt_u32(&mut self) -> Option<Option<u32>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(u32::try_from(self.u64()?).ok()?)),
            _ => None,
        }
    }
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(false)),
            2 => Some(Some(true)),
            _ => None,
        }
    }
}
