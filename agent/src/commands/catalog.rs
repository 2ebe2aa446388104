//! `tend catalog`: the resolved desired state of one host.

use serde::Serialize;

use crate::catalog::Catalog;
use crate::resource::Resource;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: super::HostArgs,
    #[arg(long, value_enum, default_value_t = Style::Yaml)]
    format: Style,
}

/// How a catalog is printed.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Style {
    Yaml,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let mut manifests = super::open_repo(&args.target.repo)?;
    let (host, facts) = crate::facts::host_and_facts(args.target.host.as_deref());
    let target = crate::catalog::Target {
        environment: args.target.env.as_deref(),
        host: &host,
        facts: &facts,
        secrets: crate::catalog::Secrets::Placeholder,
        all_flags_on: false,
    };
    match crate::catalog::compile(&mut manifests, &target) {
        Ok(catalog) => {
            print!("{}", render(&catalog, matches!(args.format, Style::Json))?);
            Ok(0)
        }
        Err(problems) => {
            super::print_diagnostics(&manifests, &problems);
            Ok(super::EXIT_ERROR)
        }
    }
}

#[derive(Serialize)]
struct View<'a> {
    host: &'a str,
    environment: &'a str,
    roles: &'a [String],
    /// In the order they are applied.
    resources: Vec<ResourceView<'a>>,
}

#[derive(Serialize)]
struct ResourceView<'a> {
    #[serde(flatten)]
    resource: &'a Resource,
    /// Where it was declared.
    declared_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_sha256: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    requires: Vec<String>,
}

fn render(catalog: &Catalog, json: bool) -> anyhow::Result<String> {
    let resources = catalog
        .order
        .iter()
        .map(|&i| {
            let r = &catalog.resources[i];
            let bytes = match &r.desired {
                crate::resource::Desired::File(f) => f.content.as_deref(),
                _ => None,
            };
            let content = bytes.map(|b| {
                if r.sensitive {
                    "(sensitive)".to_owned()
                } else {
                    String::from_utf8(b.to_vec()).unwrap_or_else(|_| "(binary)".to_owned())
                }
            });
            ResourceView {
                resource: r,
                declared_at: r.origin.to_string(),
                content,
                content_sha256: bytes
                    .filter(|_| !r.sensitive)
                    .map(crate::resource::sha256_hex),
                requires: catalog.requires[i]
                    .iter()
                    .map(|&d| catalog.resources[d].id.to_string())
                    .collect(),
            }
        })
        .collect();
    let view = View {
        host: &catalog.host,
        environment: &catalog.environment,
        roles: &catalog.roles,
        resources,
    };
    Ok(if json {
        let mut s = serde_json::to_string_pretty(&view)?;
        s.push('\n');
        s
    } else {
        serde_saphyr::to_string(&view)?
    })
}
