"""`apicenterd flows run --dry-run` and `flows mapping` against the real connectors and simulators."""

from __future__ import annotations

import json

from apicenterd import cli


def test_dry_run_prints_a_field_by_field_plan_and_writes_nothing(simulators, config, capsys):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=8)
    path, _ = config(ccv_url, eacc_url)
    sim = eacc_app.state.sim
    assert cli.main(["flows", "run", "products", "--config", str(path), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] is True and out["created"] == len(out["plans"]) > 0
    plan = out["plans"][0]
    assert plan["op"] == "create" and plan["entity"] == "products" and "sku" in plan["diff"]
    assert sim.articles == {}  # nothing written

    # after a real run and a change in the source, the dry run shows the diff of that one product
    assert cli.main(["flows", "run", "products", "--config", str(path), "--json"]) == 0
    capsys.readouterr()
    pid, product = next((pid, p) for pid, p in ccv_app.state.sim.products.items() if p["is_active"])
    ccv_app.state.sim.update_product(pid, price=float(product["price"]) + 10)
    before = {k: dict(v) for k, v in sim.articles.items()}
    assert cli.main(["flows", "run", "products", "--config", str(path), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"would update products {product['productnumber']}" in text
    assert "~ price_incl_tax:" in text and "nothing was written" in text
    assert sim.articles == before


def test_flows_mapping_shows_source_canonical_and_target(simulators, config, capsys):
    ccv_app, eacc_app, ccv_url, eacc_url = simulators(products=1)
    path, _ = config(ccv_url, eacc_url, products={"create_only_fields": ["name"]})
    assert cli.main(["flows", "mapping", "products", "--config", str(path), "--json"]) == 0
    rows = {r["field"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["name"]["policy"] == "create only"
    assert rows["sku"]["policy"] == "create + update"
    assert rows["ean"]["policy"] == "not stored by target"
