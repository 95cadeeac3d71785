//! Kernel messages: the request we send and the replies we read (shapes as Jupyter Server
//! 1.x and 2.x send them over the JSON WebSocket protocol).
use aistudio_ssh::kernel::{execute_request, read_kernel_message, KernelEvent};
use serde_json::json;

#[test]
fn execute_request_has_the_fields_every_kernel_needs() {
    let request = execute_request("m1", "s1", "%%bash\necho hi", "2026-11-28T00:00:00Z");
    assert_eq!(request["header"]["msg_type"], "execute_request");
    assert_eq!(request["header"]["msg_id"], "m1");
    assert_eq!(request["header"]["session"], "s1");
    assert_eq!(request["channel"], "shell");
    assert_eq!(request["content"]["code"], "%%bash\necho hi");
    assert_eq!(request["content"]["allow_stdin"], false);
    assert_eq!(request["content"]["store_history"], false);
}

fn frame(channel: &str, msg_type: &str, parent: &str, content: serde_json::Value) -> String {
    json!({"channel": channel, "msg_type": msg_type, "header": {"msg_type": msg_type},
           "parent_header": {"msg_id": parent}, "content": content})
    .to_string()
}

#[test]
fn messages_for_our_request_are_read_and_others_ignored() {
    let stream = frame(
        "iopub",
        "stream",
        "m1",
        json!({"name": "stdout", "text": "aistudio-ssh: ok\n"}),
    );
    assert_eq!(
        read_kernel_message(&stream, "m1"),
        KernelEvent::Stream {
            name: "stdout".into(),
            text: "aistudio-ssh: ok\n".into()
        }
    );
    assert_eq!(read_kernel_message(&stream, "other"), KernelEvent::Other);
    let reply = frame("shell", "execute_reply", "m1", json!({"status": "error"}));
    assert_eq!(
        read_kernel_message(&reply, "m1"),
        KernelEvent::Reply {
            status: "error".into()
        }
    );
    let error = frame(
        "iopub",
        "error",
        "m1",
        json!({"ename": "CalledProcessError", "evalue": "exit 1", "traceback": []}),
    );
    assert_eq!(
        read_kernel_message(&error, "m1"),
        KernelEvent::Error {
            ename: "CalledProcessError".into(),
            evalue: "exit 1".into()
        }
    );
    assert_eq!(
        read_kernel_message(
            &frame("iopub", "status", "m1", json!({"execution_state": "idle"})),
            "m1"
        ),
        KernelEvent::Idle
    );
    assert_eq!(
        read_kernel_message(
            &frame("iopub", "status", "m1", json!({"execution_state": "busy"})),
            "m1"
        ),
        KernelEvent::Other
    );
    // msg_type only in the header (older servers), and garbage.
    let old = json!({"header": {"msg_type": "execute_reply"}, "parent_header": {"msg_id": "m1"}, "content": {"status": "ok"}}).to_string();
    assert_eq!(
        read_kernel_message(&old, "m1"),
        KernelEvent::Reply {
            status: "ok".into()
        }
    );
    assert_eq!(read_kernel_message("not json", "m1"), KernelEvent::Other);
}
