//! What the gateway's answers mean: every shape a real AI Studio client logged, and Jupyter's own.
use aistudio_ssh::gateway::{classify_answer, Answer, AnswerSeen};

const BASE: &str = "https://aistudio.baidu.com/bd-cpu-01/user/1234567/7892508/";

fn seen(status: u16, content_type: &str, body: &str) -> AnswerSeen {
    AnswerSeen {
        status,
        content_type: content_type.into(),
        body_head: body.into(),
        redirected_to: None,
        base_url: BASE.into(),
    }
}

#[test]
fn jupyter_json_is_read_and_nothing_else_is() {
    let status = r#"{"started": "2026-11-29T09:00:00Z", "last_activity": "x"}"#;
    assert_eq!(
        classify_answer(&seen(200, "application/json", status)),
        Answer::Json
    );
    // Jupyter's own JSON error is still Jupyter's answer (the caller reads its status).
    let missing = r#"{"message": "No such file", "reason": null}"#;
    assert_eq!(
        classify_answer(&seen(404, "application/json; charset=UTF-8", missing)),
        Answer::Json
    );
    assert_eq!(
        classify_answer(&seen(500, "text/plain", "oops")),
        Answer::Failed
    );
}

#[test]
fn the_restore_window_and_a_cold_instance_mean_wait() {
    assert_eq!(
        classify_answer(&seen(
            492,
            "text/plain; charset=utf-8",
            "数据未下载完，请稍后重试"
        )),
        Answer::Restoring
    );
    for status in [502, 503, 504] {
        assert_eq!(
            classify_answer(&seen(status, "text/html", "<html>Bad Gateway</html>")),
            Answer::Starting
        );
    }
    // A cold instance's page: HTML where JSON was asked for, no login in sight.
    let cold =
        "<!DOCTYPE html><html><head><title>AI Studio</title></head><body>正在启动…</body></html>";
    assert_eq!(
        classify_answer(&seen(200, "text/html; charset=utf-8", cold)),
        Answer::Starting
    );
    assert_eq!(classify_answer(&seen(200, "", cold)), Answer::Starting);
    // A cold page that links to a login is still a cold page; a 502 with JSON is the gateway's.
    let linking = "<html><head><title>AI Studio</title></head><body><a href=\"/login\">登录</a> 启动中</body></html>";
    assert_eq!(
        classify_answer(&seen(200, "text/html", linking)),
        Answer::Starting
    );
    assert_eq!(
        classify_answer(&seen(502, "application/json", r#"{"error": "upstream"}"#)),
        Answer::Starting
    );
}

#[test]
fn an_expired_login_is_never_a_result() {
    let login = r#"<!DOCTYPE html><html><head><title>登录百度帐号</title></head>
        <body><script src="https://passport.baidu.com/passApi/js/uni_login_wrapper.js"></script></body></html>"#;
    assert_eq!(
        classify_answer(&seen(200, "text/html", login)),
        Answer::LoggedOut
    );
    assert_eq!(
        classify_answer(&seen(401, "text/html", "<html>Unauthorized</html>")),
        Answer::LoggedOut
    );
    assert_eq!(
        classify_answer(&seen(403, "text/html", "<html>Forbidden</html>")),
        Answer::LoggedOut
    );
    let form = r#"<html><body><form><input name="u"><input type="password" name="p"></form></body></html>"#;
    assert_eq!(
        classify_answer(&seen(200, "text/html", form)),
        Answer::LoggedOut
    );
    // A redirect of api/status fetch was told not to follow (it went to another origin).
    let mut opaque = seen(0, "", "");
    opaque.redirected_to = Some("opaque".into());
    assert_eq!(classify_answer(&opaque), Answer::LoggedOut);
    // fetch followed a redirect away from the server (to the login page).
    let mut redirected = seen(200, "text/html", "<html></html>");
    redirected.redirected_to =
        Some("https://aistudio.baidu.com/login?redirect=%2Fbd-cpu-01".into());
    assert_eq!(classify_answer(&redirected), Answer::LoggedOut);
    // A redirect within the server (Jupyter's own, to add a slash) is no logout.
    let mut within = seen(200, "application/json", "{}");
    within.redirected_to = Some(format!("{BASE}api/contents/work/"));
    assert_eq!(classify_answer(&within), Answer::Json);
}

#[test]
fn an_xsrf_refusal_is_told_apart_from_a_logout() {
    // Tornado's 403 page for a missing or wrong token.
    let missing = "<html><title>403: Forbidden</title><body>403: Forbidden<br>'_xsrf' argument missing from POST</body></html>";
    assert_eq!(
        classify_answer(&seen(403, "text/html", missing)),
        Answer::XsrfRefused
    );
    let wrong = r#"{"message": "XSRF cookie does not match POST argument", "reason": null}"#;
    assert_eq!(
        classify_answer(&seen(403, "application/json", wrong)),
        Answer::XsrfRefused
    );
}

#[test]
fn only_waiting_answers_are_asked_again() {
    // The restore: often at first (SSH soon after it ends), then less.
    let restoring: Vec<_> = [0, 59_999, 60_000, 299_999, 300_000]
        .iter()
        .map(|&waited| Answer::Restoring.retry_after_ms(1, waited).unwrap())
        .collect();
    assert_eq!(restoring, [100, 100, 1_000, 1_000, 3_000]);
    assert_eq!(Answer::Starting.retry_after_ms(3, 0), Some(4_000));
    assert_eq!(Answer::LoggedOut.retry_after_ms(1, 0), Some(15_000));
    for answer in [Answer::Json, Answer::XsrfRefused, Answer::Failed] {
        assert_eq!(answer.retry_after_ms(1, 0), None, "{answer:?}");
    }
}
