//! A thin W3C WebDriver client over `reqwest` for the console's browser
//! tests: starts Debian's `chromedriver` on a free port, opens a headless
//! Chromium at 1280x900 and drives it (navigate, find, type, click, run a
//! script, screenshot). Without `chromium` and `chromedriver` on `PATH`
//! the tests fail with an explanation; `scripts/ci-deps.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Tab and Enter in WebDriver key codes.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// Collects script errors, `console.error` calls, failed resource loads and
/// CSP violations of every document into `window.__ltyErrors`, installed
/// before any page script runs.
const ERROR_COLLECTOR: &str = r#"
window.__ltyErrors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) { window.__ltyErrors.push('resource failed: ' + (t.src || t.href)); }
  else { window.__ltyErrors.push('error: ' + e.message); }
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__ltyErrors.push('rejection: ' + e.reason); });
document.addEventListener('securitypolicyviolation', function (e) {
  window.__ltyErrors.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI);
});
var original = console.error;
console.error = function () {
  window.__ltyErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  return original.apply(console, arguments);
};
"#;

fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// A headless Chromium session and its chromedriver.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
    /// Where the browser would save downloads (the tests fetch them with
    /// the session cookie instead); removed with the browser.
    _downloads: tempfile::TempDir,
}

/// One element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium (1280x900, Chinese UI
    /// language).
    pub async fn start() -> Self {
        let chromium = find_tool("chromium").or_else(|| find_tool("chromium-browser"));
        let driver = find_tool("chromedriver");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            panic!(
                "the console's browser tests need Debian's `chromium` and `chromedriver` \
                 on PATH (packages chromium and chromium-driver): run scripts/ci-deps.sh"
            );
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(res) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = res.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let downloads = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--lang=zh-CN",
            "--no-first-run",
        ];
        // Chromium refuses to run as root inside its sandbox.
        if is_root() {
            args.push("--no-sandbox");
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
                "prefs": {
                    "intl.accept_languages": "zh-CN,zh",
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                },
            },
        } } });
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .unwrap();
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {res}"))
            .to_owned();
        let browser = Self {
            http,
            base: format!("{base}/session/{id}"),
            driver: child,
            _downloads: downloads,
        };
        browser
            .cmd(
                "POST",
                "/goog/cdp/execute",
                json!({
                    "cmd": "Page.addScriptToEvaluateOnNewDocument",
                    "params": { "source": ERROR_COLLECTOR },
                }),
            )
            .await;
        browser
    }

    async fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let res = req.send().await.expect("WebDriver request");
        let ok = res.status().is_success();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url })).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> Element {
        for _ in 0..100 {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let html = self.text("body").await;
        panic!("no element {css} on {}:\n{html}", self.url().await);
    }

    /// The first element matching `css` now, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let v = self
            .try_cmd(
                "POST",
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .ok()?;
        Some(Element(v[ELEMENT].as_str()?.to_owned()))
    }

    /// Types `text` into the element (after clearing it when `clear`).
    pub async fn type_into(&self, css: &str, text: &str, clear: bool) {
        let e = self.find(css).await;
        if clear {
            self.cmd("POST", &format!("/element/{}/clear", e.0), json!({}))
                .await;
        }
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    /// Presses keys on whatever has the focus.
    pub async fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": k.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": k.to_string() }));
        }
        self.cmd(
            "POST",
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await;
    }

    /// Resizes the window (CSS pixels).
    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    /// Accepts a `confirm()` dialog, waiting up to 5 s for it.
    pub async fn accept_dialog(&self) {
        for _ in 0..50 {
            if self
                .try_cmd("POST", "/alert/accept", json!({}))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no dialog to accept");
    }

    /// Runs `script` (a function body) with `args` and returns its value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.eval(
            "var e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    /// Waits until the text of `css` contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        for _ in 0..100 {
            if self.text(css).await.contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{css} on {} never showed {needle:?}: {:?}",
            self.url().await,
            self.text(css).await
        );
    }

    /// The value of cookie `name`.
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        self.try_cmd("GET", &format!("/cookie/{name}"), Value::Null)
            .await
            .ok()
    }

    /// Saves a PNG screenshot as `{dir}/{name}.png` and checks the page:
    /// no horizontal overflow, no collected errors, a label for every
    /// input.
    pub async fn check_page(&self, name: &str) {
        // A click that navigates returns before the new page has loaded
        // its stylesheet; measure the finished page.
        for _ in 0..100 {
            let state = self.eval("return document.readyState;", json!([])).await;
            if state == "complete" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let png = self.cmd("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        let width = self
            .eval(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                json!([]),
            )
            .await;
        if width[0].as_i64().unwrap() > width[1].as_i64().unwrap() {
            let wide = self.eval(TOO_WIDE, json!([])).await;
            panic!("{name}: the page overflows horizontally ({width}): {wide}");
        }
        let errors = self
            .eval(
                "return window.__ltyErrors || ['collector missing'];",
                json!([]),
            )
            .await;
        assert_eq!(errors, json!([]), "{name}: errors in the browser");
        let unlabelled = self.eval(UNLABELLED, json!([])).await;
        assert_eq!(unlabelled, json!([]), "{name}: inputs without a label");
    }
}

/// The innermost elements reaching past the window's right edge.
const TOO_WIDE: &str = r#"
var out = [];
document.querySelectorAll('body *').forEach(function (el) {
  if (el.getBoundingClientRect().right > window.innerWidth && el.children.length === 0) {
    out.push(el.outerHTML.slice(0, 200));
  }
});
return out.slice(0, 5);
"#;

/// Visible inputs, selects and textareas without a `<label for>` or
/// `aria-label`.
const UNLABELLED: &str = r#"
var out = [];
document.querySelectorAll('input, select, textarea').forEach(function (el) {
  if (el.type === 'hidden') return;
  var labelled = (el.id && document.querySelector('label[for="' + el.id + '"]'))
    || el.getAttribute('aria-label') || el.closest('label');
  if (!labelled) out.push(el.outerHTML);
});
return out;
"#;

/// `$CARGO_TARGET_DIR/console-screenshots`, or `LTY_SCREENSHOT_DIR`.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("LTY_SCREENSHOT_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap_or(Path::new("target"))
            .join("console-screenshots"),
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Browser {
    /// Ends the session (Chromium exits), then stops chromedriver. Plain
    /// blocking HTTP: this runs on panics too, outside any runtime.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let rest = self.base.trim_start_matches("http://");
        if let Some((host, path)) = rest.split_once('/')
            && let Ok(mut s) = std::net::TcpStream::connect(host)
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.start_kill();
    }
}
