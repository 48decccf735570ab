def test_agents_endpoint_serves_the_pool(client):
    response = client("/api/agents")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["count"] == 8 == len(data["agents"])
    assert data["agents"][0] == {"name": "L3.1", "domain": "accessibility", "status": "running"}


def test_agents_endpoint_filters_by_status(client):
    data = client("/api/agents", "status=failed").json()
    assert [agent["name"] for agent in data["agents"]] == ["L3.5"]
