//! `cargo run -p xtask -- dist OUT`: man pages (section 1, one per command
//! and subcommand, as git's `git-commit(1)`) and bash, zsh and fish
//! completions for `tend` and `tend-log`, made from the parsers the
//! binaries run, so they never drift from `--help`.
//!
//! OUT/NAME/man/NAME.1 (and NAME-SUB.1, …), OUT/NAME/bash/NAME,
//! OUT/NAME/zsh/_NAME, OUT/NAME/fish/NAME.fish: one tree per binary, as
//! each goes into its own package.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [command, out] if command == "dist" => dist(Path::new(out)),
        _ => anyhow::bail!("usage: xtask dist OUT_DIR"),
    }
}

fn dist(out: &Path) -> anyhow::Result<()> {
    for command in [tend::cli::Cli::command(), tend_log::cli::Cli::command()] {
        let name = command.get_name().to_owned();
        let out = out.join(&name);
        let mut built = command.clone();
        built.build();
        man_pages(&built, &name, &name, &out.join("man"))?;
        for (shell, dir, file) in [
            (clap_complete::Shell::Bash, "bash", name.clone()),
            (clap_complete::Shell::Zsh, "zsh", format!("_{name}")),
            (clap_complete::Shell::Fish, "fish", format!("{name}.fish")),
        ] {
            let path = out.join(dir).join(file);
            std::fs::create_dir_all(path.parent().unwrap())?;
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), &name, &mut text);
            std::fs::write(&path, text).with_context(|| path.display().to_string())?;
        }
    }
    Ok(())
}

/// NAME.1 for the command, and NAME-SUB.1 for each subcommand, down the
/// tree; `usage` is how it is typed (`tend rollout preview`).
fn man_pages(command: &clap::Command, name: &str, usage: &str, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let page = command
        .clone()
        .name(name.to_owned())
        .bin_name(usage.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .title(name.to_uppercase())
        .section("1")
        .source(format!("tend {}", env!("CARGO_PKG_VERSION")))
        .manual("tend manual")
        .render(&mut text)?;
    let path: PathBuf = dir.join(format!("{name}.1"));
    std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    // `tend log` only runs `tend-log`, whose own pages (tend-log(1), …)
    // are in its package: a `tend-log.1` here would clash with them.
    let own = |sub: &&clap::Command| {
        sub.get_name() != "help" && !(name == "tend" && sub.get_name() == "log")
    };
    for sub in command.get_subcommands().filter(own) {
        let sub_name = sub.get_name();
        man_pages(
            sub,
            &format!("{name}-{sub_name}"),
            &format!("{usage} {sub_name}"),
            dir,
        )?;
    }
    Ok(())
}
