//! Acceptance (issue 3): the audit log records every mutating and every denied request, and
//! Secret data and bearer tokens never appear in it or in the server's log. Secrets are
//! created, patched and read with real kubectl (and a token issued with `kubectl create token`);
//! then `audit.log` and the server log are searched for the values.

mod support;

use support::{Server, flotilla_bin, stderr, stdout, temp_dir};

#[test]
fn secret_data_and_tokens_never_reach_the_logs() {
    let dir = temp_dir("acceptance-audit");
    let hub = Server::start(&["hub", "--listen", "127.0.0.1:0"], &dir.join("hub"));
    const CREATED: &str = "created-plaintext-7f3a9c";
    const PATCHED: &str = "patched-plaintext-b81e44";
    const APPLIED: &str = "applied-plaintext-0d5e21";

    hub.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        &format!("--from-literal=password={CREATED}"),
    ]);
    hub.kubectl_ok(&[
        "patch",
        "secret",
        "db",
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"stringData":{{"password":"{PATCHED}"}}}}"#),
    ]);
    let file = dir.join("secret.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\nstringData:\n  token: {APPLIED}\n"
        ),
    )
    .unwrap();
    hub.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    hub.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    assert!(
        hub.kubectl_ok(&["get", "secret", "db", "-o", "yaml"])
            .contains("password:")
    );
    hub.kubectl_ok(&["create", "serviceaccount", "robot"]);
    let token = hub.kubectl_ok(&["create", "token", "robot"]);
    let token = token.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");

    // A user with no bindings is denied: that denial is audited too.
    let alice = dir.join("alice.kubeconfig");
    let out = std::process::Command::new(flotilla_bin())
        .args(["kubeconfig", "create", "--data-dir"])
        .arg(&hub.data_dir)
        .args(["--user", "alice", "-o"])
        .arg(&alice)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = support::kubectl(&alice, &["get", "secret", "db"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "secrets \"db\" is forbidden: User \"alice\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        stderr(&out)
    );
    // The token authenticates (so it really was a live credential) and is then used in a request.
    let out = std::process::Command::new("kubectl")
        .args(["--kubeconfig", "/dev/null", "--server", &hub.url()])
        .arg("--certificate-authority")
        .arg(hub.data_dir.join("ca.crt"))
        .args(["--token", &token, "auth", "whoami"])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("system:serviceaccount:default:robot"),
        "{}",
        stdout(&out)
    );

    let audit = std::fs::read_to_string(hub.data_dir.join("audit.log")).unwrap();
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let secret_writes: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["objectRef"]["resource"] == "secrets"
                && ["create", "patch", "update"].contains(&e["verb"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(
        secret_writes.len() >= 3,
        "create, patch and apply of secrets are audited: {secret_writes:?}"
    );
    assert!(
        events.iter().any(|e| e["user"]["username"] == "alice"
            && e["objectRef"]["resource"] == "secrets"
            && e["responseStatus"]["code"] == 403),
        "the denied read is audited"
    );
    assert!(
        events
            .iter()
            .any(|e| e["objectRef"]["subresource"] == "token" && e["objectRef"]["name"] == "robot"),
        "the TokenRequest is audited"
    );

    let server_log = std::fs::read_to_string(&hub.log).unwrap();
    // kubectl sends Secret data base64-encoded, and the server stores it so; look for both.
    use std::fmt::Write as _;
    let b64 = |s: &str| {
        let out = std::process::Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(s.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut leaks = String::new();
    for needle in [CREATED, PATCHED, APPLIED, &token] {
        for form in [needle.to_string(), b64(needle)] {
            if audit.contains(&form) {
                let _ = writeln!(leaks, "audit.log contains {form}");
            }
            if server_log.contains(&form) {
                let _ = writeln!(leaks, "server log contains {form}");
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks}");
    let _ = std::fs::remove_dir_all(&dir);
}
