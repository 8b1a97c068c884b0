# edgecConfig.cmake -- what `find_package(edgec)` loads (point `edgec_DIR` or `CMAKE_PREFIX_PATH`
# at this folder). It finds the compiler (`EDGEC_EXECUTABLE`, else `edgec` on PATH) and provides
#
#   edgec_add_model(<name> MODEL <m.onnx> [TARGET <target>] [QUANTIZE <mode>] [CALIBRATE <c.npz>]
#                   [OPTIONS <edgec compile flags>...])
#
# which makes the static library target <name>: the compiled model (model.o), the runtime object
# edgec built for the same target, and the include directory holding <name>.h and edgec_runtime.h.
# TARGET defaults to EDGEC_TARGET (set by the toolchain files next to this one), else `host`.
# Also: `edgec::board`, the startup code and linker script of the board named by EDGEC_BOARD
# (empty when it is unset), and the paths EDGEC_CORTEX_M_STARTUP and EDGEC_MPS2_AN500_LD for
# projects that bring their own board support. See docs/user-guide.md.
# The runtime's C sources ship next to this folder (runtime/c); the board files live there.
get_filename_component(EDGEC_RUNTIME_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../c" ABSOLUTE)
set(EDGEC_CORTEX_M_STARTUP "${EDGEC_RUNTIME_SOURCE_DIR}/cortex_m/startup.c")
set(EDGEC_MPS2_AN500_LD "${EDGEC_RUNTIME_SOURCE_DIR}/cortex_m/mps2_an500.ld")

find_program(EDGEC_EXECUTABLE edgec DOC "the edgec compiler")
if(NOT EDGEC_EXECUTABLE OR NOT EXISTS "${EDGEC_EXECUTABLE}")
  set(edgec_FOUND FALSE)
  set(edgec_NOT_FOUND_MESSAGE
      "the edgec compiler was not found: put `edgec` on PATH or set EDGEC_EXECUTABLE (now `${EDGEC_EXECUTABLE}`)")
  return()
endif()

# The board support a firmware links besides the model: vector table and reset code, memory map,
# and newlib with semihosting (printf, exit) as QEMU's mps2-an500 provides it.
if(NOT TARGET edgec::board)
  # GLOBAL: one target for every directory that calls find_package(edgec).
  add_library(edgec::board INTERFACE IMPORTED GLOBAL)
  if(EDGEC_BOARD STREQUAL "mps2-an500")
    if(NOT EXISTS "${EDGEC_CORTEX_M_STARTUP}" OR NOT EXISTS "${EDGEC_MPS2_AN500_LD}")
      message(FATAL_ERROR "edgec: the board files are not in ${EDGEC_RUNTIME_SOURCE_DIR}/cortex_m "
                          "(use runtime/cmake from an edgec checkout, next to runtime/c)")
    endif()
    set_target_properties(edgec::board PROPERTIES
      INTERFACE_SOURCES "${EDGEC_CORTEX_M_STARTUP}"
      INTERFACE_LINK_OPTIONS "-T${EDGEC_MPS2_AN500_LD};--specs=rdimon.specs;-Wl,--gc-sections;-Wl,-z,noexecstack")
  elseif(EDGEC_BOARD)
    message(FATAL_ERROR "edgec: EDGEC_BOARD `${EDGEC_BOARD}` is not a board edgec knows (mps2-an500, or leave it unset)")
  endif()
endif()

# Sets <var> to <path> made absolute against the calling directory; stops the configure step
# with one message when there is no such file.
function(_edgec_existing_file var path what)
  get_filename_component(absolute "${path}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${absolute}")
    message(FATAL_ERROR "${what} `${absolute}` does not exist")
  endif()
  set(${var} "${absolute}" PARENT_SCOPE)
endfunction()

function(edgec_add_model name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "MODEL;TARGET;QUANTIZE;CALIBRATE" "OPTIONS")
  set(where "edgec_add_model(${name})")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${where}: unexpected arguments `${arg_UNPARSED_ARGUMENTS}`")
  endif()
  # The name prefixes the model's C symbols (`<name>_init`, `<NAME>_ARENA_BYTES`).
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "${where}: the name must be a C identifier")
  endif()
  if(NOT arg_MODEL)
    message(FATAL_ERROR "${where}: MODEL <file.onnx> is required")
  endif()
  _edgec_existing_file(model "${arg_MODEL}" "${where}: model")
  set(target "${arg_TARGET}")
  if(NOT target)
    set(target "${EDGEC_TARGET}")
  endif()
  if(NOT target)
    set(target host)
  endif()

  set(dir "${CMAKE_CURRENT_BINARY_DIR}/edgec/${name}")
  set(flags --target "${target}" --name "${name}")
  set(depends "${model}" "${EDGEC_EXECUTABLE}")
  if(arg_QUANTIZE)
    list(APPEND flags --quantize "${arg_QUANTIZE}")
  endif()
  if(arg_CALIBRATE)
    if(NOT arg_QUANTIZE STREQUAL "int8")
      message(FATAL_ERROR "${where}: CALIBRATE needs QUANTIZE int8")
    endif()
    _edgec_existing_file(calibrate "${arg_CALIBRATE}" "${where}: calibration file")
    list(APPEND flags --calibrate "${calibrate}")
    list(APPEND depends "${calibrate}")
  elseif(arg_QUANTIZE STREQUAL "int8")
    message(FATAL_ERROR "${where}: QUANTIZE int8 needs CALIBRATE <samples.npz>")
  endif()
  list(APPEND flags ${arg_OPTIONS})

  # The command line goes into a file the command depends on, rewritten only when it changes: a
  # changed flag then reruns edgec with every generator (Makefiles do not track command lines).
  set(stamp "${dir}/edgec-flags.txt")
  string(REPLACE ";" " " line "${EDGEC_EXECUTABLE};compile;${model};${flags}")
  file(CONFIGURE OUTPUT "${stamp}" CONTENT "${line}\n" @ONLY)

  set(include "${dir}/include")
  set(objects "${dir}/model.o" "${dir}/edgec_runtime.o")
  add_custom_command(
    OUTPUT ${objects} "${include}/${name}.h" "${include}/edgec_runtime.h" "${dir}/report.json"
    COMMAND "${EDGEC_EXECUTABLE}" compile "${model}" -o "${dir}" ${flags} > "${dir}/compile.log"
    COMMAND "${CMAKE_COMMAND}" -E make_directory "${include}"
    COMMAND "${CMAKE_COMMAND}" -E copy "${dir}/model.h" "${include}/${name}.h"
    COMMAND "${CMAKE_COMMAND}" -E copy "${dir}/edgec_runtime.h" "${include}/edgec_runtime.h"
    DEPENDS ${depends} "${stamp}"
    COMMENT "edgec: compiling ${arg_MODEL} for ${target} as ${name}"
    VERBATIM)
  set_source_files_properties(${objects} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  # The model and runtime objects are archived as they are: edgec built both for the target.
  add_library(${name} STATIC ${objects} "${include}/${name}.h")
  set_target_properties(${name} PROPERTIES LINKER_LANGUAGE C)
  target_include_directories(${name} INTERFACE "${include}")
  if(target MATCHES "^(cortex-m|thumbv)")
    # clang's objects use 32-bit enums, arm-none-eabi's newlib short ones; no enum crosses the
    # edgec ABI except the edgec_status return value, which fits either way.
    target_link_options(${name} INTERFACE "-Wl,--no-enum-size-warning")
  endif()
endfunction()
