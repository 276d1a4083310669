//! A real headless Chromium on a page, driven through `tests/browser/driver.mjs`
//! (playwright-core from `tests/browser/node_modules`, installed by `scripts/test.sh` with
//! `npm ci`): evaluate expressions in the page, take screenshots, and read what the page logged
//! as errors and which other origins it tried to reach.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long Chromium may take to start and load the page, and any one command.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// One browser with one page open.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
}

/// What the page did that a test forbids.
#[derive(Debug, serde::Deserialize)]
pub struct PageReport {
    pub console_errors: Vec<String>,
    pub foreign_requests: Vec<String>,
}

/// `tests/browser`, where the driver and its node_modules are.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where the tests write files for people to look at (screenshots): `<target>/test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/debug/deps/system-<hash>
    let target = exe.ancestors().nth(3).expect("the target dir");
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create the artifacts dir");
    dir
}

impl Browser {
    /// Starts Chromium on `url` and waits until the page has loaded.
    pub fn open(url: &str) -> Self {
        Self::open_with(url, &[])
    }

    /// [`Browser::open`] with more Chromium flags.
    pub fn open_with(url: &str, flags: &[String]) -> Self {
        let dir = browser_dir();
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "tests/browser/node_modules is missing: run ./scripts/test.sh (it runs `npm ci` there)"
        );
        let chromium = std::env::var("ELB_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).exists(),
            "{chromium} is missing: run ./scripts/test.sh (it installs Debian's chromium)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("driver.mjs"))
            .arg(url)
            .env(
                "ELB_BROWSER_ARGS",
                serde_json::to_string(flags).expect("flags as JSON"),
            )
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node (the test command installs Node.js's packages; is node on PATH?)");
        let stdin = child.stdin.take().expect("piped stdin");
        let answers = lines(child.stdout.take().expect("piped stdout"));
        let mut browser = Self {
            child,
            stdin,
            answers,
        };
        let ready = browser.next_line();
        assert!(
            ready.contains("\"ready\":true"),
            "the driver did not start: {ready}"
        );
        browser
    }

    /// The value of the JavaScript expression `js` in the page (promises are awaited).
    pub fn eval(&mut self, js: &str) -> serde_json::Value {
        self.command(serde_json::json!({ "op": "eval", "js": js }))
    }

    /// Polls `js` until it is `true`, or fails after `deadline` with `what` and the last value
    /// of `show`.
    pub fn until(&mut self, what: &str, js: &str, show: &str, deadline: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.eval(js) == serde_json::Value::Bool(true) {
                return started.elapsed();
            }
            if started.elapsed() > deadline {
                panic!(
                    "{what}: not within {deadline:?}; the page shows {}",
                    self.eval(show)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A screenshot of the whole page, as PNG, at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        self.command(serde_json::json!({ "op": "screenshot", "path": path }));
    }

    /// The console errors and the requests to other origins so far.
    pub fn report(&mut self) -> PageReport {
        serde_json::from_value(self.command(serde_json::json!({ "op": "report" })))
            .expect("the driver's report")
    }

    fn command(&mut self, command: serde_json::Value) -> serde_json::Value {
        writeln!(self.stdin, "{command}").expect("write to the driver");
        let line = self.next_line();
        let answer: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said {line}: {e}"));
        assert_eq!(answer["ok"], true, "{command} failed: {}", answer["error"]);
        answer["value"].clone()
    }

    fn next_line(&mut self) -> String {
        self.answers
            .recv_timeout(COMMAND_DEADLINE)
            .unwrap_or_else(|_| {
                panic!("the browser driver did not answer within {COMMAND_DEADLINE:?}")
            })
    }
}

fn lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", serde_json::json!({ "op": "close" }));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
