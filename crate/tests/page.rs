use aistudio_ssh::page::{locate_notebook, NotebookPage};
use aistudio_ssh::self_hosted::{
    locate_page, SelfHostedInput, SelfHostedJupyter, SELF_HOSTED_ZONE,
};

const BASE: &str = "https://aistudio.baidu.com/bd-gpu-01/user/123456/7892508/";

#[test]
fn every_known_page_shape_yields_the_same_base_url() {
    let shapes = [
        ("home", NotebookPage::IdeHome),
        ("home#codelab", NotebookPage::IdeHome),
        ("home#vscode", NotebookPage::IdeHome),
        ("home/", NotebookPage::IdeHome),
        ("lab", NotebookPage::Lab),
        ("lab?", NotebookPage::Lab),
        ("lab/tree/work/main.ipynb", NotebookPage::Lab),
        ("lab/workspaces/auto-x?reset", NotebookPage::Lab),
        ("notebooks/main.ipynb", NotebookPage::ClassicNotebook),
        (
            "notebooks/work/a%20b.ipynb#cell",
            NotebookPage::ClassicNotebook,
        ),
    ];
    for (tail, page) in shapes {
        let url = format!("{BASE}{tail}");
        let found = locate_notebook(&url).unwrap_or_else(|| panic!("{url} not recognised"));
        assert_eq!(found.base_url, BASE, "{url}");
        assert_eq!(found.page, page, "{url}");
        assert_eq!(found.origin, "https://aistudio.baidu.com");
        assert_eq!(found.zone, "bd-gpu-01");
        assert_eq!(found.user_id, "123456");
        assert_eq!(found.project_id, "7892508");
    }
}

#[test]
fn older_zones_and_self_hosted_origins_with_ports_are_recognised() {
    let found = locate_notebook("http://127.0.0.1:8888/idehubcpu01/user/1/42/lab").unwrap();
    assert_eq!(
        found.base_url,
        "http://127.0.0.1:8888/idehubcpu01/user/1/42/"
    );
    assert_eq!(found.zone, "idehubcpu01");
}

#[test]
fn other_pages_and_malformed_urls_are_not_notebooks() {
    let not_notebooks = [
        "",
        "aistudio.baidu.com/bd-gpu-01/user/1/2/home",
        "ftp://aistudio.baidu.com/bd-gpu-01/user/1/2/home",
        "https://aistudio.baidu.com/",
        "https://aistudio.baidu.com/projectdetail/7892508",
        "https://aistudio.baidu.com/bd-gpu-01/user/1/2/",
        "https://aistudio.baidu.com/bd-gpu-01/user/1/2/api/kernels",
        "https://aistudio.baidu.com/bd-gpu-01/user/1/2/api_serving/8080/",
        "https://aistudio.baidu.com/bd-gpu-01/user/1/2/home/extra",
        "https://aistudio.baidu.com/bd-gpu-01/user/1/2/notebooks/",
        "https://aistudio.baidu.com/bd-gpu-01/users/1/2/home",
        "https://aistudio.baidu.com/bd-gpu-01/user/../2/home",
        "https://aistudio.baidu.com/bd gpu/user/1/2/home",
        "https://evil@aistudio.baidu.com/bd-gpu-01/user/1/2/home",
        "https:///bd-gpu-01/user/1/2/home",
    ];
    for url in not_notebooks {
        assert_eq!(
            locate_notebook(url),
            None,
            "{url:?} was taken for a notebook"
        );
    }
}

fn self_hosted(url: &str) -> Result<SelfHostedJupyter, Vec<String>> {
    SelfHostedInput {
        url: url.to_owned(),
        name: "mylab".to_owned(),
        user: "jovyan".to_owned(),
    }
    .validate()
    .map_err(|errors| errors.iter().map(|e| e.field.to_owned()).collect())
}

#[test]
fn a_self_hosted_server_is_its_base_url_cut_from_any_page_under_it() {
    let cases = [
        (
            "https://jupyter.example.org/user/alice/",
            "https://jupyter.example.org/user/alice/",
        ),
        (
            "https://jupyter.example.org/user/alice",
            "https://jupyter.example.org/user/alice/",
        ),
        (
            "  https://Jupyter.Example.org/user/alice/lab/tree/work/a.ipynb?token=abc#x ",
            "https://jupyter.example.org/user/alice/",
        ),
        (
            "https://jupyter.example.org:443/lab",
            "https://jupyter.example.org/",
        ),
        (
            "https://jupyter.example.org:8443/tree",
            "https://jupyter.example.org:8443/",
        ),
        (
            "http://localhost:8888/lab?token=abc",
            "http://localhost:8888/",
        ),
        (
            "http://127.0.0.1:8888/notebooks/a.ipynb",
            "http://127.0.0.1:8888/",
        ),
        ("http://[::1]:8888/", "http://[::1]:8888/"),
        (
            "https://hub.example.org/user/a%40b.org/lab",
            "https://hub.example.org/user/a%40b.org/",
        ),
    ];
    for (typed, base) in cases {
        let server =
            self_hosted(typed).unwrap_or_else(|fields| panic!("{typed:?} refused: {fields:?}"));
        assert_eq!(server.base_url, base, "{typed:?}");
        assert_eq!(server.name, "mylab");
        assert_eq!(server.user, "jovyan");
    }
    assert_eq!(
        self_hosted("https://jupyter.example.org:8443/lab")
            .unwrap()
            .origin_pattern,
        "https://jupyter.example.org/*"
    );
    assert_eq!(
        self_hosted("http://[::1]:8888/").unwrap().origin_pattern,
        "http://[::1]/*"
    );
}

#[test]
fn self_hosted_input_is_refused_field_by_field() {
    let refused_urls = [
        "",
        "jupyter.example.org/lab",
        "ftp://jupyter.example.org/",
        // Plain http would carry the container's keys in the clear off this machine.
        "http://jupyter.example.org/lab",
        "http://192.168.1.5:8888/lab",
        "https://alice:secret@jupyter.example.org/",
        "https://jupyter.example.org:0/",
        "https://jupyter.example.org:70000/",
        "https://jupyter example.org/",
        "https://jupyter.example.org/user/../admin/",
        "https://jupyter.example.org/user/a b/",
        "https://jupyter.example.org/user/$(id)/",
        "https://aistudio.baidu.com/bd-gpu-01/user/1/2/lab",
    ];
    for url in refused_urls {
        assert_eq!(self_hosted(url).unwrap_err(), ["selfHosted.url"], "{url:?}");
    }
    let all_bad = SelfHostedInput {
        url: "ftp://x".to_owned(),
        name: "7892508".to_owned(),
        user: "Root;id".to_owned(),
    }
    .validate()
    .unwrap_err();
    let fields: Vec<&str> = all_bad.iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        ["selfHosted.url", "selfHosted.name", "selfHosted.user"]
    );
    assert!(
        all_bad[1].allowed.contains("at least one letter"),
        "{}",
        all_bad[1].allowed
    );
    for name in ["", "my lab", "a/b", &"x".repeat(65)] {
        let refused = SelfHostedInput {
            url: "https://jupyter.example.org/".to_owned(),
            name: name.to_owned(),
            user: "jovyan".to_owned(),
        }
        .validate()
        .unwrap_err();
        assert_eq!(refused[0].field, "selfHosted.name", "{name:?}");
    }
}

#[test]
fn pages_are_located_on_ai_studio_and_under_granted_self_hosted_servers_only() {
    let server = self_hosted("https://jupyter.example.org/user/alice/lab").unwrap();
    let servers = [server];
    let lab = locate_page(
        "https://jupyter.example.org/user/alice/lab/tree/a.ipynb",
        &servers,
    )
    .unwrap();
    assert_eq!(lab.project_id, "mylab");
    assert_eq!(lab.base_url, "https://jupyter.example.org/user/alice/");
    assert_eq!(lab.origin, "https://jupyter.example.org");
    assert_eq!(lab.zone, SELF_HOSTED_ZONE);
    assert_eq!(lab.page, NotebookPage::Lab);
    let tree = locate_page("https://jupyter.example.org/user/alice/tree?x", &servers).unwrap();
    assert_eq!(tree.page, NotebookPage::Tree);

    let ai_studio = locate_page(&format!("{BASE}home#codelab"), &servers).unwrap();
    assert_eq!(ai_studio.project_id, "7892508");
    assert_eq!(ai_studio.page, NotebookPage::IdeHome);

    for elsewhere in [
        // Another user's server on the same host, and pages that are no notebook.
        "https://jupyter.example.org/user/bob/lab",
        "https://jupyter.example.org/user/alice/",
        "https://jupyter.example.org/user/alice/api/kernels",
        "https://jupyter.example.org/user/alice/labx",
        "https://jupyter.example.org.evil.test/user/alice/lab",
        // AI Studio's URL shapes count on AI Studio's origin only.
        "https://jupyter.example.org/bd-gpu-01/user/1/2/lab",
        "http://aistudio.baidu.com/bd-gpu-01/user/1/2/lab",
    ] {
        assert_eq!(locate_page(elsewhere, &servers), None, "{elsewhere}");
    }
    assert_eq!(
        locate_page("https://jupyter.example.org/user/alice/lab", &[]),
        None
    );
}
