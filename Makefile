# Thin wrapper around meson: the two commands of README.md, and little else.
#   make run    install what is missing, build, start the appliance on its default config
#   make test   install what is missing, build (plain and sanitized), run every suite
# and, beside them, the appliance image (README, "Deploying the appliance"):
#   make image       build the bootable disk (IMAGE_DIR/sluice.raw, .qcow2), as root
#   make image-test  boot it under qemu: relay mail through it, cut its power
#   make fuzz-campaign  every fuzzer for an hour at once, niced, report in fuzz-campaign/

BUILD      ?= build
ASAN_BUILD ?= build-asan
IMAGE_DIR  ?= build-image

.PHONY: all run test build clean image image-test fuzz-campaign

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

image:
	firmware-config/build-image.sh $(IMAGE_DIR)

image-test:
	firmware-config/image-test.sh $(IMAGE_DIR) $(BUILD)-test

fuzz-campaign:
	firmware-config/deps.sh test
	tests/fuzz/campaign.sh build-fuzz

clean:
	rm -rf $(BUILD) $(BUILD)-test $(ASAN_BUILD) build-fuzz $(IMAGE_DIR)
