//! Workloads and baselines for `scripts/bench` (not part of tend).
//!
//! - `gen W1|W2|W3 DIR`: a repository under DIR/repo whose host `bench-host`
//!   manages the files under DIR/root, and DIR/list (`mode sha256 path`).
//!   W1: 1,000 files inline; W2: 1,000 from a template; W3: 10,000 and W4:
//!   100,000 inline.
//! - `floor DIR`: what converging an unchanged tree cannot avoid: lstat,
//!   read and sha256-compare every file of DIR/list.
//! - `write W DIR`: write the same files atomically by hand (temporary file,
//!   fsync, rename, fsync of the directory), the floor of a first run.
//! - `scribble DIR`: overwrite every tenth file by hand, as drift.
//! - `sink PORT`: answer every HTTP request on 127.0.0.1:PORT with 200, as
//!   the central log would acknowledge a report (for `scripts/bench-agent`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn count(workload: &str) -> usize {
    match workload {
        "W1" | "W2" => 1_000,
        "W3" => 10_000,
        "W4" => 100_000,
        other => panic!("unknown workload {other}"),
    }
}

/// About 400 bytes of a config-like file, different for every index.
fn static_content(i: usize) -> String {
    let mut s = format!("# file {i}, managed by tend\n");
    let mut line = 0;
    while s.len() < 380 {
        let _ = writeln!(s, "setting_{line} = value-{i}-{line}");
        line += 1;
    }
    s
}

const TEMPLATE: &str = "# rendered by tend\nserver {\n    name {{name}};\n    listen 127.0.0.1:{{port}};\n    root /srv/www/{{name}};\n    access_log /var/log/www/{{name}}.log;\n    error_log /var/log/www/{{name}}.err;\n    keepalive_timeout 65;\n    client_max_body_size 10m;\n    gzip on;\n    gzip_types text/plain text/css application/json;\n    location / { try_files $uri $uri/ =404; }\n}\n";

fn template_content(i: usize) -> String {
    TEMPLATE
        .replace("{{name}}", &format!("site-{i}"))
        .replace("{{port}}", &(8000 + i).to_string())
}

fn content(workload: &str, i: usize) -> String {
    if workload == "W2" {
        template_content(i)
    } else {
        static_content(i)
    }
}

fn mode(workload: &str) -> u32 {
    if workload == "W2" { 0o640 } else { 0o644 }
}

fn path(root: &Path, i: usize) -> PathBuf {
    // 100 files a directory, as real trees are spread out.
    root.join(format!("d{:03}", i / 100))
        .join(format!("f{i:05}.conf"))
}

fn generate(workload: &str, dir: &Path) {
    let n = count(workload);
    let root = dir.join("root");
    let repo = dir.join("repo");
    fs_err::create_dir_all(repo.join("roles/bench/templates")).unwrap();
    fs_err::create_dir_all(repo.join("manifests")).unwrap();
    fs_err::create_dir_all(&root).unwrap();
    fs_err::write(
        repo.join("manifests/bench.yaml"),
        format!(
            "environment: bench\nvars:\n  root: {}\nhosts:\n  - match: bench-host\n    roles: [bench]\n",
            root.display()
        ),
    )
    .unwrap();
    fs_err::write(repo.join("roles/bench/templates/site.conf.hbs"), TEMPLATE).unwrap();
    let mut role = String::from("resources:\n");
    let mut list = String::new();
    for d in 0..n.div_ceil(100) {
        let _ = writeln!(role, "  - directory: \"{{{{root}}}}/d{d:03}\"");
    }
    for i in 0..n {
        let p = path(&root, i);
        let rel = p.strip_prefix(&root).unwrap().display().to_string();
        let _ = writeln!(role, "  - file: \"{{{{root}}}}/{rel}\"");
        if workload == "W2" {
            let _ = writeln!(role, "    template: site.conf.hbs");
            let _ = writeln!(role, "    vars: {{ name: site-{i}, port: {} }}", 8000 + i);
        } else {
            let _ = writeln!(role, "    content: |");
            for line in static_content(i).lines() {
                let _ = writeln!(role, "      {line}");
            }
        }
        let _ = writeln!(role, "    mode: \"{:04o}\"", mode(workload));
        let digest = Sha256::digest(content(workload, i).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(list, "{:o} {hex} {}", mode(workload), p.display());
    }
    fs_err::write(repo.join("roles/bench/role.yaml"), role).unwrap();
    fs_err::write(dir.join("list"), list).unwrap();
}

fn floor(dir: &Path) {
    let list = fs_err::read_to_string(dir.join("list")).unwrap();
    let mut differ = 0;
    for line in list.lines() {
        let mut parts = line.splitn(3, ' ');
        let (mode, digest, path) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(_) => {
                differ += 1;
                continue;
            }
        };
        let bytes = std::fs::read(path).unwrap();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if format!("{:o}", meta.mode() & 0o7777) != mode || hex != digest {
            differ += 1;
        }
    }
    println!("{differ} differ");
}

fn write(workload: &str, dir: &Path) {
    let root = dir.join("root");
    for i in 0..count(workload) {
        let p = path(&root, i);
        let parent = p.parent().unwrap();
        if !parent.exists() {
            fs_err::create_dir(parent).unwrap();
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(".bench")
            .tempfile_in(parent)
            .unwrap();
        tmp.write_all(content(workload, i).as_bytes()).unwrap();
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode(workload)))
            .unwrap();
        tmp.as_file().sync_all().unwrap();
        tmp.persist(&p).unwrap();
        std::fs::File::open(parent).unwrap().sync_all().unwrap();
    }
}

fn scribble(dir: &Path) {
    let list = fs_err::read_to_string(dir.join("list")).unwrap();
    for line in list.lines().step_by(10) {
        let path = line.splitn(3, ' ').nth(2).unwrap();
        fs_err::write(path, "edited by hand\n").unwrap();
    }
}

fn sink(port: u16) {
    use std::io::{BufRead as _, Read as _};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") => generate(&args[2], Path::new(&args[3])),
        Some("floor") => floor(Path::new(&args[2])),
        Some("write") => write(&args[2], Path::new(&args[3])),
        Some("scribble") => scribble(Path::new(&args[2])),
        Some("sink") => sink(args[2].parse().expect("a port")),
        _ => {
            eprintln!("usage: bench_helper gen|floor|write|scribble|sink ...");
            std::process::exit(2);
        }
    }
}
