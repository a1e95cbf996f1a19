# The commands a person runs. Each target installs missing Debian packages first (ci/deps.sh).
BUILD ?= build
JOBS ?= $(shell nproc)
SHARDLAB := $(BUILD)/shardlab

.PHONY: all deps build demo check asan format clean

all: build

deps:
	@bash ci/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: build
	@bash ci/demo.sh $(SHARDLAB)

check: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@ctest --test-dir build-asan --output-on-failure -j $(JOBS)

format:
	@find common ref impl cli include tests conformance bench examples -name '*.[ch]' -o -name '*.cu' \
	  | xargs -r clang-format -i

clean:
	@rm -rf $(BUILD) build-asan
