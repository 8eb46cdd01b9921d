"""What the connector and the simulator know of Exact Online's resources.

The read-only properties are the ones the vendor's .NET SDK marks ``[SDKFieldType(FieldType.ReadOnly)]``
(``exactonline/exactonline-api-dotnet-client`` @ 02d05483, ``src/ExactOnline.Client.Models``),
for the resources this connector writes; the tests check every name against the SDK's model
file (``ExactOnline.Client.Models.xml`` in shared/api-specs). Exact ignores or refuses them
on a write, so the connector never sends them and the simulator refuses them.
"""

from __future__ import annotations

__all__ = ["RESOURCES", "READ_ONLY", "SDK_MODEL", "SYNC", "BULK"]

RESOURCES = {
    "crm/Accounts": "CRM.Account",
    "crm/Contacts": "CRM.Contact",
    "logistics/Items": "Logistics.Item",
    "logistics/SalesItemPrices": "Logistics.SalesItemPrice",
    "salesorder/SalesOrders": "SalesOrder.SalesOrder",
    "salesinvoice/SalesInvoices": "SalesInvoice.SalesInvoice",
    "generaljournalentry/GeneralJournalEntries": "GeneralJournalEntry.GeneralJournalEntry",
    "current/Me": "Current.Me",
    "financial/GLAccounts": "Financial.GLAccount",
    "inventory/ItemWarehouses": "Inventory.ItemWarehouse",
    "salesorder/GoodsDeliveries": "SalesOrder.GoodsDelivery",
    "salesinvoice/PrintedSalesInvoices": "SalesInvoice.PrintedSalesInvoice",
    "logistics/ItemGroups": "Logistics.ItemGroup",
    "cashflow/PaymentConditions": "Cashflow.PaymentCondition",
    "generaljournalentry/GeneralJournalEntryLines": "GeneralJournalEntry.GeneralJournalEntryLine",
    "salesorder/SalesOrderLines": "SalesOrder.SalesOrderLine",
    "vat/VATCodes": "VAT.VATCode",
    "crm/AccountClassifications": "CRM.AccountClassification",
    "crm/AccountClassificationNames": "CRM.AccountClassificationName",
}
"""Resource path (after ``/api/v1/{division}/``) → SDK model (``ExactOnline.Client.Models.<model>``)."""

SDK_MODEL = dict(RESOURCES)
SDK_MODEL.update(
    {
        "SalesOrderLines": "SalesOrder.SalesOrderLine",
        "SalesInvoiceLines": "SalesInvoice.SalesInvoiceLine",
        "GoodsDeliveryLines": "SalesOrder.GoodsDeliveryLine",
        "GeneralJournalEntryLines": "GeneralJournalEntry.GeneralJournalEntryLine",
    }
)
"""Also the nested line collections a document is posted with."""

SYNC = {
    "logistics/Items": "sync/Logistics/Items",
    "crm/Accounts": "sync/CRM/Accounts",
    "salesorder/SalesOrders": "sync/SalesOrder/SalesOrderHeaders",
}
"""Resources read through the sync API (``Timestamp gt X``, 1,000 a page)."""

BULK = {"logistics/SalesItemPrices": "bulk/Logistics/SalesItemPrices"}
"""Resources read through the bulk API (1,000 a page) when listing them all."""

_COMMON = ("Created", "Creator", "CreatorFullName", "Division", "Modified", "Modifier", "ModifierFullName")

READ_ONLY: dict[str, frozenset[str]] = {
    "CRM.Account": frozenset(
        (
            *_COMMON,
            "AccountManagerFullName",
            "AccountManagerHID",
            "BRIN",
            "Classification",
            "ClassificationDescription",
            "Costcenter",
            "CostcenterDescription",
            "CostPaid",
            "CountryName",
            "Currency",
            "CustomerSince",
            "Document",
            "DunsNumber",
            "InvoiceAccountCode",
            "InvoiceAccountName",
            "IsAnonymised",
            "IsBank",
            "IsMember",
            "IsPurchase",
            "IsSales",
            "LanguageDescription",
            "LogoThumbnailUrl",
            "LogoUrl",
            "PaymentConditionPurchaseDescription",
            "PaymentConditionSalesDescription",
            "PurchaseCurrencyDescription",
            "PurchaseVATCodeDescription",
            "ResellerCode",
            "ResellerName",
            "SalesCurrencyDescription",
            "SalesTaxScheduleCode",
            "SalesTaxScheduleDescription",
            "SalesVATCodeDescription",
            "StateName",
            "StatusSince",
            "Type",
        )
    ),
    "CRM.Contact": frozenset(
        (
            *_COMMON,
            "AccountIsCustomer",
            "AccountIsSupplier",
            "AccountMainContact",
            "AddressLine2",
            "AddressStreet",
            "AddressStreetNumber",
            "AddressStreetNumberSuffix",
            "AllowMailing",
            "City",
            "Code",
            "Country",
            "FullName",
            "IsAnonymised",
            "IsMainContact",
            "PartnerName",
            "PartnerNamePrefix",
            "PhoneExtension",
            "PictureThumbnailUrl",
            "PictureUrl",
            "Postcode",
            "State",
        )
    ),
    "Logistics.Item": frozenset(
        (
            *_COMMON,
            "GLCostsCode",
            "GLCostsDescription",
            "GLRevenueCode",
            "GLRevenueDescription",
            "GLStockCode",
            "GLStockDescription",
            "ItemGroupCode",
            "ItemGroupDescription",
            "PictureName",
            "PictureThumbnailUrl",
            "PictureUrl",
            "SalesVatCodeDescription",
            "Stock",
            "UnitDescription",
            "UnitType",
        )
    ),
    "Logistics.SalesItemPrice": frozenset(
        (*_COMMON, "AccountName", "DefaultItemUnit", "DefaultItemUnitDescription", "ItemCode", "ItemDescription", "UnitDescription")
    ),
    "SalesOrder.SalesOrder": frozenset(
        (
            *_COMMON,
            "AmountDC",
            "AmountFC",
            "AmountFCExclVat",
            "ApprovalStatus",
            "ApprovalStatusDescription",
            "Approved",
            "Approver",
            "ApproverFullName",
            "DeliverToContactPersonFullName",
            "DeliverToName",
            "DeliveryStatusDescription",
            "DocumentNumber",
            "DocumentSubject",
            "InvoiceStatusDescription",
            "InvoiceToContactPersonFullName",
            "InvoiceToName",
            "OrderedByContactPersonFullName",
            "OrderedByName",
            "PaymentConditionDescription",
            "SalespersonFullName",
            "ShippingMethodDescription",
            "Status",
            "StatusDescription",
            "TaxScheduleCode",
            "TaxScheduleDescription",
            "WarehouseCode",
            "WarehouseDescription",
        )
    ),
    "SalesInvoice.SalesInvoice": frozenset(
        (
            *_COMMON,
            "AmountDC",
            "AmountFC",
            "AmountFCExclVat",
            "DeliverToContactPersonFullName",
            "DeliverToName",
            "DocumentNumber",
            "DocumentSubject",
            "InvoiceDate",
            "InvoiceNumber",
            "InvoiceToContactPersonFullName",
            "InvoiceToName",
            "JournalDescription",
            "OrderedByContactPersonFullName",
            "OrderedByName",
            "PaymentConditionDescription",
            "SalespersonFullName",
            "StarterSalesInvoiceStatus",
            "StarterSalesInvoiceStatusDescription",
            "Status",
            "StatusDescription",
            "TaxScheduleCode",
            "TaxScheduleDescription",
            "TypeDescription",
            "VATAmountDC",
            "VATAmountFC",
        )
    ),
    "SalesInvoice.SalesInvoiceLine": frozenset(
        (
            "AmountDC",
            "CostCenterDescription",
            "CostUnitDescription",
            "Division",
            "EmployeeFullName",
            "GLAccountDescription",
            "ItemCode",
            "ItemDescription",
            "LineNumber",
            "PricelistDescription",
            "ProjectDescription",
            "ProjectWBSDescription",
            "SalesOrder",
            "SalesOrderLine",
            "SalesOrderLineNumber",
            "SalesOrderNumber",
            "Subscription",
            "SubscriptionDescription",
            "TaxScheduleCode",
            "TaxScheduleDescription",
            "UnitDescription",
            "VATCodeDescription",
        )
    ),
    "GeneralJournalEntry.GeneralJournalEntry": frozenset(
        ("Created", "Division", "JournalDescription", "Modified", "Status", "StatusDescription", "Type", "TypeDescription")
    ),
    "GeneralJournalEntry.GeneralJournalEntryLine": frozenset(
        (
            *_COMMON,
            "AccountCode",
            "AccountName",
            "AmountDC",
            "AmountVATDC",
            "AssetCode",
            "AssetDescription",
            "CostCenterDescription",
            "CostUnitDescription",
            "DocumentNumber",
            "DocumentSubject",
            "EntryNumber",
            "GLAccountCode",
            "GLAccountDescription",
            "LineNumber",
            "ProjectCode",
            "ProjectDescription",
            "VATBaseAmountDC",
            "VATBaseAmountFC",
            "VATCodeDescription",
            "VATType",
        )
    ),
    # PrintedSalesInvoice.cs marks no property read-only (its results, e.g. DocumentCreationError, are answers)
    "SalesInvoice.PrintedSalesInvoice": frozenset(),
}
"""SDK model → its read-only properties (``[SDKFieldType(FieldType.ReadOnly)]``)."""
