# arm-none-eabi-cortex-m7.cmake -- CMake toolchain file for a Cortex-M7 (fpv5-d16, hard float)
# with GNU Arm Embedded (Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi), for QEMU's
# mps2-an500 board. It also tells edgecConfig.cmake which edgec target to compile models for
# (EDGEC_TARGET) and which board support `edgec::board` carries (EDGEC_BOARD).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
# No OS to link a test executable against until the board's startup code is there.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
# The same CPU and float ABI edgec compiles `cortex-m7` for; CMake passes them to the link too.
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard")
set(CMAKE_CXX_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
set(CMAKE_ASM_FLAGS_INIT "${CMAKE_C_FLAGS_INIT}")
set(EDGEC_TARGET cortex-m7)
set(EDGEC_BOARD mps2-an500)
