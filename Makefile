.PHONY: demo test test-fast bench install lint

# Install, migrate, seed, create the demo admin, start a small offline run, serve on :8000.
demo:
	scripts/bootstrap.sh
	.venv/bin/sdilab demo

# The whole test suite on SQLite and Postgres (127.0.0.1:5432, database "test").
test:
	scripts/test.sh

# The inner loop: lint, then the tests not marked slow or browser, on SQLite only.
test-fast:
	scripts/bootstrap.sh --test
	.venv/bin/ruff check app tests bench migrations
	env -u SDILAB_TEST_DATABASE_URL .venv/bin/pytest -q -m "not slow and not browser"

# Every benchmark in bench/, one Markdown table.
bench:
	scripts/bootstrap.sh --test
	.venv/bin/python bench/run_all.py

install:
	scripts/bootstrap.sh --test

lint:
	.venv/bin/ruff check app tests bench migrations && .venv/bin/ruff format --check app tests bench && .venv/bin/mypy && .venv/bin/lint-imports
