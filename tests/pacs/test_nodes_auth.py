"""Node settings, secrets from the keyring (never config), auth against a real Orthanc."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import PacsNode, load_settings
from core.pacs.client import PacsClient, StudyQuery
from core.pacs.errors import PacsAuthError, PacsConfigError
from core.pacs.nodes import get_node, make_session, store_secret
from tests.pacs.conftest import CT3_DIR, RecordingSink, _require
from tests.pacs.orthanc import orthanc_server


def test_nodes_come_from_the_settings_file() -> None:
    from core.paths import user_config_path

    user_config_path().write_text(
        '[[pacs]]\nname = "main"\nurl = "https://pacs.example/dicom-web"\nauth = "basic"\n'
        'username = "reader"\n'
    )
    node = get_node("main", load_settings())
    assert (node.url, node.auth, node.username) == (
        "https://pacs.example/dicom-web",
        "basic",
        "reader",
    )
    with pytest.raises(PacsConfigError, match=r"no PACS node named 'other'.*'main'"):
        get_node("other", load_settings())


def test_tls_verification_is_on_and_ca_bundle_must_exist(tmp_path: Path) -> None:
    assert make_session(PacsNode(name="a", url="https://x")).verify is True
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert make_session(PacsNode(name="a", url="https://x", ca_bundle=str(bundle))).verify == str(
        bundle
    )
    with pytest.raises(PacsConfigError, match=r"CA bundle '.*missing.pem' of PACS node 'a'"):
        make_session(PacsNode(name="a", url="https://x", ca_bundle=str(tmp_path / "missing.pem")))


def test_bearer_token_comes_from_the_keyring() -> None:
    node = PacsNode(name="cloud", url="https://cloud/dicom-web", auth="bearer")
    with pytest.raises(
        PacsConfigError, match=r"no token for PACS node 'cloud'.*doctorai pacs secret"
    ):
        make_session(node)
    store_secret(node, "tok-123")
    assert make_session(node).headers["Authorization"] == "Bearer tok-123"


def test_basic_auth_against_orthanc_with_accounts() -> None:
    _require()
    sink = RecordingSink()
    with orthanc_server(users={"alice": "s3cret-pw"}) as server:
        server.upload(sorted(CT3_DIR.glob("*.dcm")))
        node = PacsNode(name="secure", url=server.dicomweb, auth="basic", username="alice")
        with pytest.raises(PacsConfigError, match="no password for PACS node 'secure'"):
            PacsClient(node, sink)
        store_secret(node, "wrong")
        with pytest.raises(PacsAuthError, match=r"PACS 'secure'.*access denied \(HTTP 401\)"):
            PacsClient(node, sink).search_studies(StudyQuery())
        store_secret(node, "s3cret-pw")
        hits = PacsClient(node, sink).search_studies(StudyQuery())
        assert [h.patient_id for h in hits] == ["99000"]
    assert [e[1] for e in sink.of("Query")] == [8, 0]
