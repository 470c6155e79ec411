"""Declarations, README, OpenAPI and the code agree; permissions stay least-privilege."""
from __future__ import annotations

import ast

import yaml
from openapi_spec_validator import validate

from templates_src.function_catalog import load_functions, render_functions_readme
from templates_src.resources import RESOURCES
from tests.functions.conftest import FUNCTIONS
from tests.layers.helpers import exports_contract

DRAFT4_KEYWORDS = {"type", "properties", "required", "additionalProperties", "pattern", "minLength", "maxLength",
                   "minimum", "maximum", "enum", "items", "minItems", "maxItems", "maxProperties", "description",
                   "$ref", "title"}
EXPECTED = {"payment_api", "validation", "fraud_screening", "transaction_processing", "queue_worker",
            "batch_ingestion", "batch_map_ingestion", "batch_starter", "audit_logger", "status", "authorizer"}


def openapi():
    return yaml.safe_load((FUNCTIONS / "openapi.yaml").read_text(encoding="utf-8"))


def test_all_functions_are_declared():
    assert {declaration.name for declaration in load_functions()} == EXPECTED


def test_readme_is_generated_from_the_declarations():
    assert (FUNCTIONS / "README.md").read_text(encoding="utf-8") == render_functions_readme(load_functions())


def test_exports_are_the_published_keys():
    """Every export a usable resource or an escape hatch names is one docs/exports.md promises."""
    for row in RESOURCES.values():
        assert {row.value_key, row.arn_key} <= exports_contract(row.layer), row.name
        assert row.key_export in exports_contract("security"), row.name
    for declaration in load_functions():
        references = [value for value in declaration.environment.values() if hasattr(value, "export")]
        references += [resource for permission in declaration.permissions for resource in permission.resources]
        for reference in references:
            assert reference.key in exports_contract(reference.layer), f"{declaration.name}: unknown export {reference.export}"


def test_environment_variables_read_by_the_code_are_declared():
    paylib_reads = {
        "aws.py": {"AUDIT_BUCKET"}, "repository.py": {"TRANSACTIONS_TABLE"}, "idempotency.py": {"IDEMPOTENCY_TABLE"},
        "fraud.py": {"VELOCITY_TABLE"}, "keys.py": set(),  # keyring(setting=...): the caller names it
        "merchants.py": {"MERCHANTS_TABLE"},
        "payments.py": set(), "settlement_queue.py": {"PAYMENT_QUEUE_URL"},
        "settlement.py": {"NOTIFICATIONS_TOPIC_ARN"}, "batch.py": {"BATCH_STATUS_TABLE"},
        "batch_map.py": {"BATCH_STATUS_TABLE"},
        "dynamo.py": set(), "identity.py": set(), "snapstart.py": set(),
    }
    for module, expected in paylib_reads.items():
        assert _env_reads(FUNCTIONS / "paylib" / module) == expected, module
    from paylib import keys, merchants
    assert (keys.CARD_FINGERPRINT_SETTING, merchants.PEPPER_SETTING) == (
        "CARD_FINGERPRINT_SECRET_ARN", "MERCHANT_KEY_PEPPER_SECRET_ARN")
    needs = {
        "payment_api": {"TRANSACTIONS_TABLE", "IDEMPOTENCY_TABLE", "VELOCITY_TABLE", "CARD_FINGERPRINT_SECRET_ARN", "PAYMENT_QUEUE_URL"},
        "validation": {"TRANSACTIONS_TABLE"},
        "fraud_screening": {"TRANSACTIONS_TABLE", "VELOCITY_TABLE", "CARD_FINGERPRINT_SECRET_ARN"},
        "transaction_processing": {"TRANSACTIONS_TABLE", "PAYMENT_QUEUE_URL"},
        "queue_worker": {"TRANSACTIONS_TABLE", "AUDIT_BUCKET", "NOTIFICATIONS_TOPIC_ARN"},
        "batch_ingestion": {"TRANSACTIONS_TABLE", "BATCH_STATUS_TABLE", "VELOCITY_TABLE", "PAYMENT_QUEUE_URL",
                            "CARD_FINGERPRINT_SECRET_ARN", "MERCHANTS_TABLE"},
        "batch_map_ingestion": {"TRANSACTIONS_TABLE", "BATCH_STATUS_TABLE", "VELOCITY_TABLE", "PAYMENT_QUEUE_URL",
                                "CARD_FINGERPRINT_SECRET_ARN", "MERCHANTS_TABLE"},
        "batch_starter": {"BATCH_STATE_MACHINE"},
        "authorizer": {"MERCHANTS_TABLE", "MERCHANT_KEY_PEPPER_SECRET_ARN"},
        "audit_logger": {"AUDIT_BUCKET"},
        "status": {"TRANSACTIONS_TABLE", "IDEMPOTENCY_TABLE", "VELOCITY_TABLE", "PAYMENT_QUEUE_URL"},
    }
    for declaration in load_functions():
        assert needs[declaration.name] <= set(declaration.grants().variables) | set(declaration.environment), declaration.name


def _env_reads(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "env"
                and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return names


def test_permissions_are_exact_and_scoped():
    for declaration in load_functions():
        for grant in declaration.grants().statements:
            assert all("*" not in action for action in grant.actions)
            assert grant.arn[2] in ("", "/index/*") or grant.arn[2].startswith("/") and grant.arn[2].endswith("/*")
        for permission in declaration.permissions:
            for action in permission.actions:
                assert "*" not in action
            for resource in permission.resources:
                assert resource.suffix in ("", "/index/*") or resource.suffix.startswith("/") and resource.suffix.endswith("/*")


def test_openapi_is_valid_and_routes_name_existing_functions():
    document = openapi()
    validate(document)
    names = {declaration.name for declaration in load_functions() if "api" in declaration.trigger_types()}
    routed, operation_ids = set(), set()
    for _path, operations in document["paths"].items():
        for _method, operation in operations.items():
            routed.add(operation["x-function"])
            assert operation["operationId"] not in operation_ids
            operation_ids.add(operation["operationId"])
    assert routed == names
    assert {(p, m) for p, ops in document["paths"].items() for m in ops} == {
        ("/payments", "post"), ("/payments/{payment_id}", "get"), ("/payments/validate", "post"),
        ("/fraud-check", "post"), ("/status", "get")}


def test_request_schemas_use_only_api_gateway_model_keywords():
    document = openapi()

    def walk(schema, where):
        assert set(schema) <= DRAFT4_KEYWORDS, f"{where}: {set(schema) - DRAFT4_KEYWORDS}"
        for name, child in (schema.get("properties") or {}).items():
            walk(child, f"{where}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            walk(schema["additionalProperties"], f"{where}.*")
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], f"{where}[]")
    for name in ("PaymentRequest", "Card"):
        walk(document["components"]["schemas"][name], name)


def test_validation_rules_match_the_request_schema():
    from paylib import validation
    schema = openapi()["components"]["schemas"]["PaymentRequest"]
    assert set(schema["properties"]) == validation.ALLOWED_FIELDS
    assert tuple(schema["required"]) == validation.REQUIRED_FIELDS
    card = openapi()["components"]["schemas"]["Card"]
    assert set(card["properties"]) == validation.CARD_FIELDS
    assert tuple(card["required"]) == validation.CARD_REQUIRED


def test_tables_md_documents_the_keys_the_code_uses():
    text = (FUNCTIONS / "paylib" / "TABLES.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:6]]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| table")}
    assert rows["Transactions"][:3] == ["`payment_id` (S)", "-", "`by-customer`, `by-status`"]
    assert rows["Idempotency"] == ["`idempotency_key` (S)", "-", "-", "`expires_at`"]
    assert rows["Velocity"] == ["`counter_key` (S)", "`window_start` (N)", "-", "`expires_at`"]
    assert rows["BatchStatus"] == ["`batch_id` (S)", "-", "-", "`expires_at`"]
    for gsi in ("GSI `by-customer`: partition `customer_id` (S), sort `created_at` (S",
                "GSI `by-status`: partition `status` (S), sort `created_at` (S)"):
        assert gsi in text


def test_the_contract_documents_the_cvc_length_per_brand():
    cvc = openapi()["components"]["schemas"]["Card"]["properties"]["cvc"]
    assert "4 digits" in cvc["description"] and "amex" in cvc["description"].lower()
    assert "3 digits" in cvc["description"]


def test_the_contract_answers_404_for_a_malformed_payment_id():
    get = openapi()["paths"]["/payments/{payment_id}"]["get"]
    assert "400" not in get["responses"] and "404" in get["responses"]
    parameter = get["parameters"][0]
    assert "pattern" not in parameter["schema"]  # API Gateway must not answer 400 before the function
    assert "404" in parameter["description"]


def test_function_packages_hold_no_compiled_code():
    """What keeps arm64 (Graviton) open: the zips carry Python sources only, boto3 comes with the
    runtime and Powertools from the layer published for each architecture (docs/payments.md)."""
    import io
    import zipfile

    from templates_src.packaging import package_bytes
    for declaration in load_functions():
        with zipfile.ZipFile(io.BytesIO(package_bytes(declaration))) as archive:
            names = archive.namelist()
        assert names and all(name.endswith((".py", ".json")) for name in names), (declaration.name, names)


def test_the_pepper_secret_is_granted_to_the_authorizer_only():
    """Among the functions only the authorizer may read the merchant key pepper (the operator
    tool reads it with the operator's own credentials), and only it and batch ingestion (both of its
    functions) read the merchants table."""
    readers = {declaration.name: {grant.arn[1] for grant in declaration.grants().statements}
               | {resource.key for permission in declaration.permissions for resource in permission.resources}
               for declaration in load_functions()}
    assert {name for name, exports in readers.items() if "MerchantKeyPepperSecretArn" in exports} == {"authorizer"}
    assert {name for name, exports in readers.items() if "MerchantsTableArn" in exports} == {
        "authorizer", "batch_ingestion", "batch_map_ingestion"}
    authorizer = next(declaration for declaration in load_functions() if declaration.name == "authorizer")
    assert authorizer.trigger_types() == {"authorizer"}
    assert [grant.actions for grant in authorizer.grants().statements if grant.arn[1] == "MerchantsTableArn"] == [
        ("dynamodb:BatchGetItem", "dynamodb:GetItem")]
