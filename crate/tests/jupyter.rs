use aistudio_ssh::jupyter::{locate_notebook, NotebookPage};

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
