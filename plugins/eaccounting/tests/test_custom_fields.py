"""eAccounting as a source fills ``custom_fields`` with what it holds beyond the canonical fields, for a
flow's map rules to send on (e.g. to Visma.net customer and item attributes)."""

from __future__ import annotations

from apicenterd_eaccounting.mapping import api_to_customer, article_to_product


def test_a_customer_carries_website_gln_labels_note_and_terms_name():
    customer = api_to_customer({
        "Id": "c1", "Name": "Fjord AS", "IsPrivatePerson": False, "WwwAddress": " https://fjord.no ", "EdiGlnNumber": "7080000000001",
        "Note": "", "WebshopCustomerNumber": None,
        "CustomerLabels": [{"Id": "1", "Name": "VIP"}, {"Id": "2", "Name": "Nordic"}, "not a label"],
        "TermsOfPayment": {"Id": "t", "Name": "30 days", "NumberOfDays": 30},
    })  # fmt: skip
    assert customer.custom_fields == {
        "website": "https://fjord.no", "gln": "7080000000001", "labels": "Nordic, VIP", "terms_of_payment": "30 days",
    }  # fmt: skip


def test_a_customer_without_extras_has_no_custom_fields():
    assert api_to_customer({"Id": "c2", "Name": "Kari", "IsPrivatePerson": True, "CustomerLabels": "bad"}).custom_fields == {}


def test_an_article_carries_its_english_name_coding_and_labels():
    product = article_to_product({
        "Id": "a1", "Number": "SKU-1", "Name": "Stol", "NameEnglish": "Chair", "CodingName": "Varor 25%",
        "ArticleLabels": [{"Id": "1", "Name": "Outdoor"}],
    })  # fmt: skip
    assert product.custom_fields == {"name_english": "Chair", "coding": "Varor 25%", "labels": "Outdoor"}
