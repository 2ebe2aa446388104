//! The template renderer (strict handlebars) on any template text, with
//! vars of every kind a manifest can give.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars = serde_json::json!({
        "name": "web", "port": 8080, "on": true, "ratio": 0.5, "empty": "",
        "list": [1, "two", {"three": 3}], "map": {"a": {"b": [null]}},
        "host": {"name": "web-1.prod", "cpus": 2}, "env": "production", "roles": ["base", "web"]
    });
    let serde_json::Value::Object(data) = vars else {
        return;
    };
    let mut renderer = tend::template::Renderer::new(data);
    let file: std::sync::Arc<std::path::Path> =
        std::sync::Arc::from(std::path::Path::new("roles/fuzz/role.yaml"));
    let at = tend::manifest::diagnostic::Location::new(
        &file,
        tend::manifest::node::Pos { line: 1, col: 1 },
    );
    let _ = renderer.render_str(text, &at, "content", None);
    let _ = renderer.render_file(
        std::path::Path::new("roles/fuzz/templates/t.hbs"),
        text,
        &at,
        None,
    );
});
