from fastapi.testclient import TestClient

from tests import factories


def test_cross_site_post_is_refused(client: TestClient, admin: factories.UserWithPassword) -> None:
    response = client.post(
        "/login",
        data={"email": admin.email, "password": admin.password},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403
    response = client.post(
        "/login",
        data={"email": admin.email, "password": admin.password},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


def test_same_origin_post_works(client: TestClient, admin: factories.UserWithPassword) -> None:
    response = client.post(
        "/login",
        data={"email": admin.email, "password": admin.password},
        headers={
            "Sec-Fetch-Site": "same-origin",
            "Origin": "http://testserver",
            "HX-Request": "true",
        },
        follow_redirects=False,
    )
    assert response.status_code == 200 and response.headers["HX-Redirect"] == "/"


def test_pages_forbid_inline_script(client: TestClient) -> None:
    csp = client.get("/login").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
