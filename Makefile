# Thin wrapper over CMake: `make demo` and `make test` are the two set-up commands.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
SET        ?= small

.PHONY: all deps build models models-int8 demo test test-asan clean fuzz

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

models: deps
	bash scripts/make-models.sh --set $(SET)

# int8 (QDQ) versions of the reference set beside them: models/<name>.int8.onnx (shoal quantize).
models-int8: build models
	bash scripts/quantize-models.sh --shoal $(BUILD)/shoal --models $(if $(filter full,$(SET)),models-full,models)

demo: build models
	bash scripts/demo.sh $(BUILD)

test: build models
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps models
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DSHOAL_SANITIZE=ON -DSHOAL_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# Builds every libFuzzer target into build-fuzz/fuzz/ (running them: docs/DEVELOPING.md).
fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSHOAL_FUZZ=ON -DSHOAL_CUDA=OFF
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-fuzz
