//! The dashboard in a real browser (headless Chromium over the DevTools protocol): sign in
//! with a ServiceAccount token, see the three clusters, open the seed-canary application
//! waiting at its approval step; a view-only user gets Forbidden on `Resume` and nothing
//! changes; the operator presses `Resume` and sees the step succeed without a reload. Bad
//! input: an unknown token, a forged cookie, an oversized sign-in. Screenshots of every page
//! are taken; they replace docs/ui/*.png only with `FLOTILLA_UPDATE_SCREENSHOTS=1`.

mod browser;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::Browser;
use serde_json::json;
use support::{Server, TestDir, stdout};

const WAIT: Duration = Duration::from_secs(90);

fn scenario(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/seed-canary")
        .join(file)
}

/// Where screenshot `name` is written: `docs/ui/` when `FLOTILLA_UPDATE_SCREENSHOTS=1` (to
/// refresh the documentation's pictures), else the test's own folder, so an ordinary run leaves
/// the work tree unchanged.
fn screenshot_path(dir: &TestDir, name: &str) -> PathBuf {
    let folder = if std::env::var("FLOTILLA_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ui")
    } else {
        dir.path().join("screenshots")
    };
    folder.join(format!("{name}.png"))
}

/// A ServiceAccount token for `name` (in `default`) bound to `cluster_role`.
fn service_account_token(hub: &Server, name: &str, cluster_role: &str) -> String {
    hub.kubectl_ok(&["create", "serviceaccount", name, "-n", "default"]);
    hub.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        name,
        &format!("--clusterrole={cluster_role}"),
        &format!("--serviceaccount=default:{name}"),
    ]);
    hub.kubectl_ok(&["create", "token", name, "-n", "default"])
        .trim()
        .to_string()
}

/// The seed-canary application on members `test` and `prod`, waiting for approval.
fn canary_waiting_for_approval(hub: &Server, members: &[(&str, &Server)]) {
    let topology = std::fs::read_to_string(scenario("policy-topology.yaml"))
        .unwrap()
        .replace("<clusterid1>", "test")
        .replace("<clusterid2>", "prod");
    let topology_file = hub.data_dir.join("policy-topology.yaml");
    std::fs::write(&topology_file, topology).unwrap();
    hub.kubectl_ok(&["create", "namespace", "demo"]);
    for (_, member) in members {
        member.kubectl_ok(&["create", "namespace", "demo"]);
    }
    for file in ["app-meta.yaml", "workflow.yaml", "app.yaml"] {
        if file == "workflow.yaml" {
            hub.kubectl_ok(&["apply", "-f", topology_file.to_str().unwrap()]);
        }
        hub.kubectl_ok(&["apply", "-f", scenario(file).to_str().unwrap()]);
    }
    support::wait_for("deploy-prod waiting for approval", WAIT, || {
        (prod_step(hub) == "suspending").then_some(())
    });
}

fn prod_step(hub: &Server) -> String {
    hub.jsonpath("app", "demo", "demo", "{.status.workflow.steps[1].phase}")
}

fn sign_in(browser: &mut Browser, hub_url: &str, token: &str) {
    browser.navigate(&format!("{hub_url}/ui/#/clusters"));
    browser.wait_for(
        "the sign-in form",
        "!document.getElementById('signin').hidden",
        WAIT,
    );
    browser.type_into("#token", token);
    browser.click("#signin-form button[type=submit]");
    browser.wait_for(
        "signed in",
        "!document.getElementById('nav').hidden && document.getElementById('who').textContent",
        WAIT,
    );
}

fn sign_out(browser: &mut Browser) {
    browser.click("#signout");
    browser.wait_for(
        "signed out",
        "!document.getElementById('signin').hidden",
        WAIT,
    );
}

fn step_phase_in_page(step: &str) -> String {
    format!(
        "(document.querySelector('[data-step-phase={}]') || {{}}).textContent || ''",
        json!(step)
    )
}

fn open_canary(browser: &mut Browser) {
    browser.eval("location.hash = '#/app/demo/demo'");
    browser.wait_for(
        "deploy-prod suspending on the page",
        &format!("{} === 'suspending'", step_phase_in_page("deploy-prod")),
        WAIT,
    );
}

#[test]
fn dashboard_in_a_browser() {
    let dir = TestDir::new("ui-dashboard");
    let hub = Server::start(
        &[
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--cluster-probe-interval",
            "2s",
        ],
        &dir.0.join("hub"),
    );
    let test_member = Server::member("test", &dir.0.join("test"));
    let prod_member = Server::member("prod", &dir.0.join("prod"));
    let edge_member = Server::member("edge", &dir.0.join("edge"));
    for (name, member) in [
        ("test", &test_member),
        ("prod", &prod_member),
        ("edge", &edge_member),
    ] {
        hub.join(name, member);
    }
    canary_waiting_for_approval(&hub, &[("test", &test_member), ("prod", &prod_member)]);
    let admin_token = service_account_token(&hub, "fleet-admin", "cluster-admin");
    hub.kubectl_ok(&[
        "create",
        "clusterrole",
        "fleet-viewer",
        "--verb=get,list,watch",
        "--resource=applications.core.oam.dev,applicationrevisions.core.oam.dev,managedclusters.cluster.open-cluster-management.io,events",
    ]);
    let viewer_token = service_account_token(&hub, "fleet-viewer", "fleet-viewer");
    let url = hub.url();
    let mut browser = Browser::launch(&dir.0.join("chromium"));

    // An unknown token: back on the sign-in page, with a message.
    browser.navigate(&format!("{url}/ui/"));
    browser.wait_for(
        "the sign-in form",
        "!document.getElementById('signin').hidden",
        WAIT,
    );
    let labels = browser.eval("document.querySelector('label[for=token]').textContent");
    assert_eq!(labels, json!("Token"));
    browser.screenshot(&screenshot_path(&dir, "signin"));
    browser.type_into("#token", "not-a-real-token");
    browser.click("#signin-form button[type=submit]");
    let message = browser.wait_for(
        "the sign-in error",
        "document.getElementById('signin-message').textContent",
        WAIT,
    );
    assert!(
        message.as_str().unwrap().contains("not accepted"),
        "{message}"
    );
    assert_eq!(
        browser.eval("document.getElementById('nav').hidden"),
        json!(true)
    );

    // A view-only user sees the page; Resume is Forbidden and nothing changes.
    sign_in(&mut browser, &url, &viewer_token);
    open_canary(&mut browser);
    browser.click("#op-resume");
    let banner = browser.wait_for(
        "the Forbidden banner",
        "document.getElementById('banner').textContent",
        WAIT,
    );
    let banner = banner.as_str().unwrap();
    assert!(banner.starts_with("Forbidden: "), "{banner}");
    assert!(
        banner.contains("system:serviceaccount:default:fleet-viewer"),
        "{banner}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(prod_step(&hub), "suspending");
    assert_eq!(
        browser.eval(&step_phase_in_page("deploy-prod")),
        json!("suspending")
    );
    sign_out(&mut browser);

    // The operator: three clusters, the applications, the canary; Resume moves the step live.
    sign_in(&mut browser, &url, &admin_token);
    let clusters = browser.wait_for(
        "three clusters",
        "(() => { const c = [...document.querySelectorAll('[data-cluster]')].map(e => e.textContent); \
         return c.length === 3 ? c.join(',') : ''; })()",
        WAIT,
    );
    assert_eq!(clusters, json!("edge,prod,test"));
    // Labels: add one to edge, see it on the hub and on the page; remove it again.
    browser.type_into("input[aria-label='New label for edge']", "region=eu");
    browser.click("input[aria-label='New label for edge'] + button");
    support::wait_for("edge labelled region=eu", WAIT, || {
        let label = stdout(&hub.kubectl(&[
            "get",
            "managedcluster",
            "edge",
            "-o",
            "jsonpath={.metadata.labels.region}",
        ]));
        (label == "eu").then_some(())
    });
    browser.wait_for(
        "the region chip",
        "[...document.querySelectorAll('.chip')].some(c => c.textContent.startsWith('region=eu'))",
        WAIT,
    );
    browser.screenshot(&screenshot_path(&dir, "clusters"));
    browser.click("button[title='Remove label region']");
    browser.wait_for(
        "the region chip gone",
        "![...document.querySelectorAll('.chip')].some(c => c.textContent.startsWith('region=eu'))",
        WAIT,
    );
    assert_eq!(
        stdout(&hub.kubectl(&[
            "get",
            "managedcluster",
            "edge",
            "-o",
            "jsonpath={.metadata.labels.region}",
        ])),
        ""
    );
    browser.eval("location.hash = '#/applications'");
    let row = browser.wait_for(
        "the demo application row",
        "[...document.querySelectorAll('tbody tr')].map(r => r.innerText).find(t => t.includes('demo')) || ''",
        WAIT,
    );
    assert!(
        row.as_str().unwrap().contains("workflowSuspending"),
        "{row}"
    );
    browser.screenshot(&screenshot_path(&dir, "applications"));
    open_canary(&mut browser);
    browser.screenshot(&screenshot_path(&dir, "application"));
    // A marker that a page load would wipe out.
    browser.eval("window.__noReload = 'still here'");
    browser.click("#op-resume");
    browser.wait_for(
        "deploy-prod succeeded on the page",
        &format!("{} === 'succeeded'", step_phase_in_page("deploy-prod")),
        WAIT,
    );
    assert_eq!(browser.eval("window.__noReload"), json!("still here"));
    let phases = hub.jsonpath("app", "demo", "demo", "{.status.workflow.steps[*].phase}");
    eprintln!("after Resume, the hub says: {phases}");
    support::wait_for("deploy-prod succeeded on the hub", WAIT, || {
        (prod_step(&hub) == "succeeded").then_some(())
    });
    browser.screenshot(&screenshot_path(&dir, "application-resumed"));

    // The overview draws the fleet's ready replicas; `flotilla top apps` prints them.
    browser.eval("location.hash = '#/overview'");
    browser.wait_for(
        "the ready-replicas chart",
        "document.querySelectorAll('svg polyline').length === 3",
        WAIT,
    );
    let rollout = browser.wait_for(
        "the canary's rollout duration",
        "[...document.querySelectorAll('svg text')].map(t => t.textContent).find(t => t.startsWith('demo/demo')) || ''",
        WAIT,
    );
    assert!(rollout.as_str().unwrap().contains("demo-v1"), "{rollout}");
    browser.screenshot(&screenshot_path(&dir, "overview"));
    let top = support::wait_for("top apps with both clusters ready", WAIT, || {
        let out = support::flotilla(&hub.kubeconfig, &["top", "apps"]);
        let text = support::stdout(&out);
        let ready = |cluster: &str| {
            text.lines().any(|l| {
                l.split_whitespace().take(4).collect::<Vec<_>>() == ["demo", "demo", cluster, "1/1"]
            })
        };
        (ready("prod") && ready("test")).then_some(text)
    });
    assert!(top.starts_with("NAMESPACE"), "{top}");

    // Resources across members, read through the hub's cluster gateway as the user, whom
    // each member's own RBAC must allow.
    for member in [&test_member, &prod_member, &edge_member] {
        member.kubectl_ok(&[
            "create",
            "clusterrolebinding",
            "fleet-admin-view",
            "--clusterrole=view",
            "--user=system:serviceaccount:default:fleet-admin",
        ]);
    }
    browser.eval("location.hash = '#/resources'");
    let rows = browser.wait_for(
        "the demo Deployment in test and prod",
        "(() => { const r = [...document.querySelectorAll('tbody tr')].map(r => r.innerText.split('\\t').join(' ')).filter(t => t.includes('demo Ready:1/1')); \
         return r.length === 2 ? r.join('|') : ''; })()",
        WAIT,
    );
    let rows = rows.as_str().unwrap();
    assert!(rows.contains("prod") && rows.contains("test"), "{rows}");
    browser.screenshot(&screenshot_path(&dir, "resources"));

    // Bad input straight at the hub, from the page: a forged cookie, an oversized sign-in.
    browser.call(
        "Network.setCookie",
        json!({"name": "flotilla_session", "value": "forged", "url": format!("{url}/ui/"),
               "path": "/ui", "secure": true, "httpOnly": true, "sameSite": "Strict"}),
    );
    let forged = browser.eval(
        "fetch('/ui/api/api/v1/namespaces', {headers: {'X-Requested-With': 'flotilla-ui'}}).then(r => r.status)",
    );
    assert_eq!(forged, json!(401));
    let oversized = browser.eval(
        "fetch('/ui/login', {method: 'POST', headers: {'X-Requested-With': 'flotilla-ui', 'Content-Type': 'application/json'}, \
         body: JSON.stringify({token: 'x'.repeat(100000)})}).then(r => r.status)",
    );
    assert_eq!(oversized, json!(413));
    let no_csrf_header = browser.eval(
        "fetch('/ui/login', {method: 'POST', body: JSON.stringify({token: 'x'})}).then(r => r.status)",
    );
    assert_eq!(no_csrf_header, json!(403));

    // No token in the hub's log or audit log.
    let log = std::fs::read_to_string(&hub.log).unwrap_or_default()
        + &std::fs::read_to_string(hub.data_dir.join("audit.log")).unwrap_or_default();
    assert!(!log.contains(&admin_token), "the token was logged");
}
