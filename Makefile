# Thin wrapper around meson: the two commands of README.md, and little else.
#   make run    install what is missing, build, start the appliance on its default config
#   make test   install what is missing, build (plain and sanitized), run every suite

BUILD      ?= build
ASAN_BUILD ?= build-asan

.PHONY: all run test build clean

all: build

build:
	firmware-config/deps.sh run
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) -Dtests=false
	meson compile -C $(BUILD)

run: build
	firmware-config/run-dev.sh $(BUILD)

test:
	firmware-config/deps.sh test
	BUILD=$(BUILD)-test ASAN_BUILD=$(ASAN_BUILD) tests/run_suites.sh

clean:
	rm -rf $(BUILD) $(BUILD)-test $(ASAN_BUILD) build-fuzz
