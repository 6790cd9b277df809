//! The dashboard's page: one HTML file with its script and stylesheet, embedded in the binary. `/ui` serves
//! them as three files under a strict Content-Security-Policy ([`crate::http`]); [`report_html`] inlines them,
//! with the data, into one static file for `switchyard logs report`.

use switchyard_store::Dashboard;

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// The sign-in form (`<!--MESSAGE-->` marks where a refusal is told).
pub const LOGIN_HTML: &str = include_str!("assets/login.html");
/// The page's script.
pub const APP_JS: &str = include_str!("assets/app.js");
/// The page's stylesheet.
pub const APP_CSS: &str = include_str!("assets/app.css");

/// The dashboard as one static HTML file (`switchyard logs report`): the page with its script and stylesheet
/// inlined and `dashboard` embedded as JSON, so it opens anywhere without a server.
pub fn report_html(dashboard: &Dashboard) -> Result<String, serde_json::Error> {
    // `<` escaped, so no value (a prompt, a model name) can close the script element.
    let data = serde_json::to_string(dashboard)?.replace('<', "\\u003c");
    Ok(INDEX_HTML
        .replace("<link rel=\"stylesheet\" href=\"/ui/app.css\">", &format!("<style>\n{}\n</style>", APP_CSS))
        .replace(
            "<script src=\"/ui/app.js\" defer></script>",
            &format!("<script>\n{}\n</script>", APP_JS.replace("</script", "<\\/script")),
        )
        .replace("<!--DATA-->", &format!("<script type=\"application/json\" id=\"data\">{data}</script>")))
}
