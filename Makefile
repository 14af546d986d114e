# Two entry points: `make run` (kiosk on simulated hardware) and `make test` (every test).
# Both set up what they need first: Debian packages when missing, then the Python venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# Runtime: GL/EGL for Kivy's SDL window (also offscreen), touch input, a CJK font for Chinese,
# gettext tools for translators; the PC/SC daemon and, to build pyscard, swig and the
# pcsc-lite headers. Tests and demos: the vpcd virtual reader and Xvfb. Speech: espeak-ng
# (English and Mandarin voices) and aplay (alsa-utils) to play what it says.
APT_PACKAGES := libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libmtdev1 fonts-wqy-microhei \
                gettext xvfb xauth pcscd libpcsclite-dev swig build-essential vsmartcard-vpcd \
                zbar-tools espeak-ng alsa-utils

.PHONY: setup apt venv run run-windowed run-pcsc test lint bench clean

setup: apt venv

apt:
	@bash scripts/ensure-apt.sh $(APT_PACKAGES)
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || bash scripts/ensure-apt.sh python3 python3-venv python3-dev
	@# pyscard compiles against Python.h: Debian's python3 needs python3-dev for it
	@$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| bash scripts/ensure-apt.sh python3-dev

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | apt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Without a display (a server, a container) the kiosk runs on a virtual 1280x800 screen.
run: setup
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(VENV)/bin/kiosk run; \
	else echo "no display: running the kiosk on a virtual 1280x800 screen (Xvfb)"; \
	  xvfb-run -a -s "-screen 0 1280x800x24" $(VENV)/bin/kiosk run; fi

run-windowed: setup
	$(VENV)/bin/kiosk run --windowed

# The same demo with the SIM read through the real PC/SC stack: pcscd and the vpcd virtual
# reader (Debian's vsmartcard-vpcd); the demo panel pushes virtual SIM cards into it.
run-pcsc: setup
	@test -S /run/pcscd/pcscd.comm || (echo "starting pcscd" && pcscd)
	$(VENV)/bin/kiosk --config config/demo-pcsc.toml run

# Two pytest processes side by side (scripts/run-tests.sh): about half the wall time.
test: setup
	PY=$(PY) bash scripts/run-tests.sh

# Style and types gate (CI runs it after the tests); rules in pyproject.toml.
lint: setup
	$(PY) -m ruff check kiosk drivers
	$(PY) -m mypy kiosk drivers

bench: setup
	$(PY) benchmarks/startup.py $(BENCH_ARGS)
	$(PY) benchmarks/ui_soak.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var tests/_artifacts .pytest_cache
