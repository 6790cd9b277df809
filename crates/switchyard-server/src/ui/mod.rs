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
/// The charts and DOM helpers the page's script uses (`window.SwitchyardCharts`).
pub const CHARTS_JS: &str = include_str!("assets/charts.js");
/// The page's stylesheet.
pub const APP_CSS: &str = include_str!("assets/app.css");

/// The dashboard as one static HTML file (`switchyard logs report`): the page with its script and stylesheet
/// inlined and `dashboard` embedded as JSON, so it opens anywhere without a server.
pub fn report_html(dashboard: &Dashboard) -> Result<String, serde_json::Error> {
    // `<` escaped, so no value (a prompt, a model name) can close the script element.
    let data = serde_json::to_string(dashboard)?.replace('<', "\\u003c");
    Ok(INDEX_HTML
        .replace("<link rel=\"stylesheet\" href=\"/ui/app.css\">", &format!("<style>\n{}\n</style>", APP_CSS))
        .replace("<script src=\"/ui/charts.js\" defer></script>", &inline_script(CHARTS_JS))
        .replace("<script src=\"/ui/app.js\" defer></script>", &inline_script(APP_JS))
        .replace("<!--DATA-->", &format!("<script type=\"application/json\" id=\"data\">{data}</script>")))
}

/// A script inlined in an HTML page (a `</script` in it could not end the element early).
fn inline_script(code: &str) -> String {
    format!("<script>\n{}\n</script>", code.replace("</script", "<\\/script"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_store::{DashboardQuery, Pricing, Store};

    #[test]
    fn the_report_inlines_the_assets_and_no_logged_text_can_close_its_script() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.sqlite")).unwrap();
        let pricing = Pricing { price: &|_| None, candidates: Vec::new(), reference: None };
        let mut view = store.dashboard(&DashboardQuery::new(0, 1_000, 1_000, 10).unwrap(), &pricing).unwrap();
        view.recent.push(switchyard_store::Recent::of(switchyard_store::DecisionRecord {
            prompt: Some("</script><script>alert(1)</script>".into()),
            ..Default::default()
        }));
        let html = report_html(&view).unwrap();
        for tag in ["src=\"/ui/app.js\"", "src=\"/ui/charts.js\"", "href=\"/ui/app.css\""] {
            assert!(!html.contains(tag), "{tag} inlined");
        }
        assert!(html.contains("<script type=\"application/json\" id=\"data\">"));
        assert!(!html.contains("</script><script>alert(1)"), "the prompt cannot end the data's script");
        assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"), "it is kept, escaped");
        assert_eq!(html.matches("<!--DATA-->").count(), 0);
    }
}
