"""What was checked in the Visma.net 9.66 spec, written down by hand (the 2.7 MB spec is not copied).

Source: APIs-guru/openapi-directory @ 26ec7cad291e32d6c020809b904272b157003e71,
``APIs/visma.net/9.66.02.1023/openapi.yaml`` (OpenAPI 3, x-origin integration.visma.net
API-index/doc/swagger), ``components.schemas``, read through the search tool's read_file on
2026-12-04 (offsets 1.78M-1.87M and 2.09M-2.13M of 2,699,861 characters; the customer, customer invoice,
address and attribute models at 1.34M-1.36M and 1.536M-1.632M). Each entry lists the
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
    "CustomerUpdateDto": {
        "properties": (
            "acceptAutoInvoices", "accountReference", "attributeLines", "corporateId", "creditDaysPastDue", "creditLimit",
            "creditTermsId", "creditVerification", "currencyId", "customerClassId", "defaultPaymentMethod", "deliveryAddress",
            "deliveryContact", "directDebitLines", "eInvoiceContract", "glAccounts", "gln", "invoiceAddress", "invoiceContact",
            "invoiceToDefaultLocation", "mainAddress", "mainContact", "name", "note", "number", "overrideNumberSeries",
            "overrideWithClassValues", "parentRecordNumber", "priceClassId", "printInvoices", "printMultiCurrencyStatements",
            "printStatements", "sendInvoicesByEmail", "sendStatementsByEmail", "statementType", "status", "vatRegistrationId",
            "vatZoneId",
        ),
        "required": (),
    },
    "CustomerGlAccountsUpdateDto": {
        "properties": (
            "cashDiscountAccount", "cashDiscountSubaccount", "customerLedgerAccount", "customerLedgerSubaccount", "discountAccount",
            "discountSubaccount", "freightAccount", "freightSubaccount", "prepaymentAccount", "prepaymentSubaccount", "salesAccount",
            "salesEuAccount", "salesExportAccount", "salesNonTaxableAccount", "salesSubaccount",
        ),
        "required": (),
    },
    "CustomerDefaultPaymentMethodUpdateDto": {"properties": ("isDefault", "paymentMethodId"), "required": ()},
    "AttributeLineUpdateDto": {"properties": ("attributeId", "attributeValue"), "required": ()},
    "AddressUpdateDto": {
        "properties": ("addressLine1", "addressLine2", "addressLine3", "city", "countryId", "county", "postalCode"),
        "required": (),
    },
    "CustomerInvoiceUpdateDto": {
        "properties": (
            "accountingCostRef", "billingAddress", "branchNumber", "cashAccount", "cashDiscountDate", "contact", "contractDocRef",
            "creditTermsId", "currencyId", "customerNumber", "customerProject", "customerRefNumber", "customerVatZoneId",
            "documentDate", "documentDueDate", "domesticServicesDeductibleDocument", "dontEmail", "dontPrint", "endDate",
            "exchangeRate", "externalReference", "financialPeriod", "hold", "invoiceContact", "invoiceLines", "invoiceText",
            "locationId", "note", "origInvoiceDate", "originatorDocRef", "overrideNumberSeries", "paymentMethodId",
            "paymentReference", "postPeriod", "project", "referenceNumber", "rotRutDetails", "salesPersonID", "salesperson",
            "sendToAutoInvoice", "startDate", "taxDetailLines",
        ),
        "required": (),
    },
    "CustomerInvoiceLinesUpdateDto": {
        "properties": (
            "accountNumber", "branchNumber", "deferralCode", "deferralSchedule", "description", "discountAmountInCurrency",
            "discountCode", "discountPercent", "domesticServicesDeductible", "endDate", "inventoryNumber", "itemType", "lineNumber",
            "manualAmountInCurrency", "manualDiscount", "note", "operation", "quantity", "salesperson", "startDate", "subaccount",
            "taskId", "termEndDate", "termStartDate", "typeOfWork", "unitPriceInCurrency", "uom", "vatCodeId",
        ),
        "required": (),
    },
    "CustomerDto": {  # the read model: what the simulator may answer beyond the 2017 CustomerDto
        "properties": (
            "acceptAutoInvoices", "accountReference", "attributes", "corporateId", "createdDateTime", "creditDaysPastDue",
            "creditLimit", "creditTerms", "creditVerification", "currencyId", "customerClass", "defaultPaymentMethodId",
            "deliveryAddress", "deliveryContact", "directDebitLines", "eInvoiceContract", "errorInfo", "glAccounts", "gln",
            "internalId", "invoiceAddress", "invoiceContact", "invoiceToDefaultLocation", "lastModifiedDateTime", "location",
            "mainAddress", "mainContact", "metadata", "name", "number", "parentRecord", "paymentMethods", "priceClass",
            "printInvoices", "printMultiCurrencyStatements", "printStatements", "sendInvoicesByEmail", "sendStatementsByEmail",
            "statementType", "status", "vatRegistrationId", "vatZone",
        ),
        "required": (),
    },
}  # fmt: skip
"""The write models checked, by name (and ``CustomerDto``, a read model)."""

NESTED: dict[str, dict[str, str]] = {
    "CustomerUpdateDto": {
        "glAccounts": "CustomerGlAccountsUpdateDto",  # DtoValueOfCustomerGlAccountsUpdateDto: wrapped
        "defaultPaymentMethod": "CustomerDefaultPaymentMethodUpdateDto",  # DtoValueOf...: wrapped
        "attributeLines": "AttributeLineUpdateDto",  # an array of unwrapped rows
        "mainAddress": "AddressUpdateDto",  # DtoValueOfAddressUpdateDto: wrapped
    },
    "InventoryUpdateDto": {"attributeLines": "AttributeLineUpdateDto"},
}
"""A write model's object-valued properties and their models (a ``{"value": ...}`` wrapper is looked through)."""

MANDATORY: dict[str, tuple[str, ...]] = {
    "JournalTransactionDto": ("financialPeriod", "ledger", "postPeriod", "transactionDate"),
    "JournalTransactionLineDto": ("accountNumber",),
    "InventoryDto": ("baseUnit", "inventoryNumber", "purchaseUnit", "salesUnit"),
    "CustomerDto": ("name", "number", "status"),
    "CustomerInvoiceDto": ("cashDiscountDate", "documentDueDate"),
}
"""Read models' "Mandatory field:" properties (the screen's; the ERP defaults some, e.g. the units from the item class)."""

INVOICE_LINE_TEXT_LENGTH = 30
"""``CustomerInvoiceLineDto.description``: "The alphanumeric string may contain up to 30 characters"."""

ORDER_TYPE_LENGTH = 2
"""``SalesOrderTypeDto.orderType``: "The ID of the order type, which is a two-character alphanumeric string"."""

PATHS = {
    "salesorder": "SalesOrderUpdateDto",
    "journaltransaction": "JournalTransactionUpdateDto",
    "inventory": "InventoryUpdateDto",
    "customer": "CustomerUpdateDto",
    "customerinvoice": "CustomerInvoiceUpdateDto",
}
"""The v1 collection a POST goes to → the 9.66 write model of its body."""

LINES = {
    "SalesOrderUpdateDto": ("lines", "SalesOrderLineUpdateDto"),
    "JournalTransactionUpdateDto": ("journalTransactionLines", "JournalTransactionLineUpdateDto"),
    "CustomerInvoiceUpdateDto": ("invoiceLines", "CustomerInvoiceLinesUpdateDto"),
}
"""A write model's line array and the line model."""
