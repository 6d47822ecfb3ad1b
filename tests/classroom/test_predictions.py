"""The predict checkpoint's partial: recording a prediction and looking again for its grade."""

import pytest
from django.test import Client


@pytest.mark.django_db
def test_a_prediction_refreshed_before_its_grade_looks_again_a_few_times(make_user):
    learner, _ = make_user(password="a long pass phrase 9")
    client = Client()
    assert client.login(username=learner.username, password="a long pass phrase 9")
    url = "/class/predictions/rest-vs-grpc/predict-wire-ratio/"
    recorded = client.post(url, {"value": "1.5"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Recorded: <strong>1.5 x</strong>" in recorded
    assert "load delay" not in recorded, "nothing to look for before a run"
    refreshed = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert f"{url}?attempt=1" in refreshed and "load delay:1s" in refreshed
    last = client.get(f"{url}?attempt=3", HTTP_HX_REQUEST="true").content.decode()
    assert "load delay" not in last
    refused = client.post(url, {"value": "lots"}, HTTP_HX_REQUEST="true").content.decode()
    assert "give a number" in refused
