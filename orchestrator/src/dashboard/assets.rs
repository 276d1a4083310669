//! The page's files, embedded in the binary at build time (the dashboard works offline and
//! fetches nothing from anywhere but itself). uPlot is vendored from npm under
//! `assets/dashboard/vendor/uplot/` with its licence and its version (`VERSION`, which the
//! page's footer repeats); `scripts/vendor-uplot.sh` refreshes the copy from the version pinned
//! in `tests/browser/package.json`.

/// `(name under /assets/, content type, bytes)`; `index.html` is served at `/`.
const FILES: [(&str, &str, &[u8]); 7] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../assets/dashboard/index.html"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/dashboard.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../assets/dashboard/favicon.svg"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/uplot/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/dashboard/vendor/uplot/LICENSE"),
    ),
];

/// The content type and bytes of the asset `name`.
pub(crate) fn get(name: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refers_only_to_embedded_assets() {
        let (_, page) = get("index.html").expect("the page");
        let page = std::str::from_utf8(page).unwrap();
        for reference in page
            .split(['"', '\''])
            .filter(|s| s.starts_with("/assets/"))
        {
            let name = reference.trim_start_matches("/assets/");
            assert!(get(name).is_some(), "{reference} is not embedded");
        }
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no other origin"
        );
    }

    #[test]
    fn the_page_names_the_vendored_version() {
        let (_, js) = get("uPlot.iife.min.js").unwrap();
        let version = include_str!("../../assets/dashboard/vendor/uplot/VERSION");
        let version = version
            .trim()
            .strip_prefix("uplot ")
            .expect("`uplot X.Y.Z`");
        let (_, page) = get("index.html").unwrap();
        let page = std::str::from_utf8(page).unwrap();
        assert!(
            page.contains(&format!("uPlot {version} ")),
            "the footer names {version}"
        );
        assert!(js.len() > 10_000, "the real library, not a stub");
    }
}
