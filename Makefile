# The two commands of the README. Both install into ./.venv first (scripts/install.sh is idempotent).
.PHONY: demo test

demo:
	scripts/install.sh
	.venv/bin/m1 eval configs/eval/quick_demo.yaml
	.venv/bin/m1 report runs/quick-demo

test:
	scripts/install.sh --test
	.venv/bin/python -m pytest
