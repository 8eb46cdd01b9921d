"""What was checked in the Visma.net 9.66 spec, written down by hand (the 2.7 MB spec is not copied).

Source: APIs-guru/openapi-directory @ 26ec7cad291e32d6c020809b904272b157003e71,
``APIs/visma.net/9.66.02.1023/openapi.yaml`` (OpenAPI 3, x-origin integration.visma.net
API-index/doc/swagger), ``components.schemas``, read through the search tool's read_file on
2026-12-04 (offsets 1.78M-1.87M and 2.09M-2.13M of 2,699,861 characters). Each entry lists the
schema's properties and its ``required`` list exactly as the spec has them; ``mandatory`` lists the
read models' fields whose description starts "Mandatory field:" (the ERP screen's required fields,
which the write models do not mark ``required``). The spec gives no ``maxLength`` on these models
(every write property is a ``DtoValueOf...`` wrapper without one); the only length stated is in
a description: an order type is "a two-character alphanumeric string" (``SalesOrderTypeDto.orderType``).
"""

from __future__ import annotations

SOURCE = "APIs-guru/openapi-directory@26ec7cad291e32d6c020809b904272b157003e71:APIs/visma.net/9.66.02.1023/openapi.yaml"

SCHEMAS: dict[str, dict[str, tuple[str, ...]]] = {
    "SalesOrderUpdateDto": {
        "properties": (
            "branchNumber", "cancelBy", "canceled", "cashAccount", "contactId", "currency", "customer", "customerOrder",
            "customerRefNo", "customerVATZone", "date", "description", "emailed", "fobPoint", "gln", "hold", "insurance",
            "invoiceSeparately", "isRotRutDeductible", "lines", "location", "note", "orderNumber", "orderType", "origOrderNbr",
            "origOrderType", "overrideNumberSeries", "owner", "paymentMethod", "paymentRef", "preferredWarehouse",
            "printDescriptionOnInvoice", "printNoteOnExternalDocuments", "printNoteOnInternalDocuments", "priority", "project",
            "recalculateShipment", "requestOn", "residentialDelivery", "rotRutDetails", "salesPerson", "saturdayDelivery",
            "schedShipment", "shipComplete", "shipSeparately", "shipVia", "shippingTerms", "shippingZone", "soBillingAddress",
            "soBillingContact", "soShippingAddress", "soShippingContact", "terms", "transactionType", "vatRegistrationId",
        ),
        "required": ("orderType",),
    },
    "SalesOrderLineUpdateDto": {
        "properties": (
            "alternateID", "branchNumber", "commissionable", "completed", "discUnitPrice", "discountAmount", "discountCode",
            "discountPercent", "expirationDate", "externalLink", "freeItem", "inventoryId", "inventoryNumber", "invoiceNbr",
            "isRotRutDeductible", "lineDescription", "lineNbr", "lotSerialNbr", "manualDiscount", "markForPO", "note",
            "operation", "overshipThreshold", "poSource", "projectTask", "quantity", "reasonCode", "requestedOn",
            "salesOrderOperation", "salesPerson", "shipComplete", "shipOn", "subaccount", "taxCategory", "undershipThreshold",
            "unitCost", "unitPrice", "uom", "warehouse",
        ),
        "required": ("inventoryNumber",),
    },
    "JournalTransactionUpdateDto": {
        "properties": (
            "autoReversing", "batchNumber", "branch", "controlTotalInCurrency", "createVatTransaction", "currencyId",
            "description", "exchangeRate", "financialPeriod", "hold", "journalTransactionLines", "ledger",
            "overrideNumberSeries", "postPeriod", "skipVatAmountValidation", "transactionCode", "transactionDate",
        ),
        "required": (),
    },
    "JournalTransactionLineUpdateDto": {
        "properties": (
            "accountNumber", "branch", "creditAmountInCurrency", "debitAmountInCurrency", "lineNumber", "note", "operation",
            "project", "projectTask", "quantity", "referenceNumber", "subaccount", "transactionDescription", "uom",
            "vatCodeId", "vatId",
        ),
        "required": (),
    },
    "InventoryUpdateDto": {
        "properties": (
            "attributeLines", "baseUnit", "body", "cogsAccount", "cogsSubaccount", "defaultIssueFrom", "defaultPrice",
            "defaultReceiptTo", "defaultWarehouse", "description", "expenseAccount", "expenseAccrualAccount", "expenseEuAccount",
            "expenseImportAccount", "expenseNonTaxableAccount", "expenseSubaccount", "intrastat", "inventoryAccount",
            "inventoryNumber", "itemClass", "kitItem", "note", "packaging", "postingClass", "purchaseUnit", "salesAccount",
            "salesEuAccount", "salesExportAccount", "salesNonTaxableAccount", "salesSubaccount", "salesUnit", "status",
            "supplierDetails", "type", "vatCode",
        ),
        "required": (),
    },
}  # fmt: skip
"""The write models checked, by name."""

MANDATORY: dict[str, tuple[str, ...]] = {
    "JournalTransactionDto": ("financialPeriod", "ledger", "postPeriod", "transactionDate"),
    "JournalTransactionLineDto": ("accountNumber",),
    "InventoryDto": ("baseUnit", "inventoryNumber", "purchaseUnit", "salesUnit"),
}
"""Read models' "Mandatory field:" properties (the screen's; the ERP defaults some, e.g. the units from the item class)."""

ORDER_TYPE_LENGTH = 2
"""``SalesOrderTypeDto.orderType``: "The ID of the order type, which is a two-character alphanumeric string"."""

PATHS = {"salesorder": "SalesOrderUpdateDto", "journaltransaction": "JournalTransactionUpdateDto", "inventory": "InventoryUpdateDto"}
"""The v1 collection a POST goes to → the 9.66 write model of its body."""

LINES = {"SalesOrderUpdateDto": ("lines", "SalesOrderLineUpdateDto"), "JournalTransactionUpdateDto": ("journalTransactionLines", "JournalTransactionLineUpdateDto")}
"""A write model's line array and the line model."""
