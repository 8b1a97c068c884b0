# edgecConfigVersion.cmake -- the version find_package(edgec <version>) checks; it follows the
# workspace's Cargo.toml version (a test keeps them equal). Before 1.0 a minor version may break
# compatibility, so a request is met by the same major.minor and a patch at least as new.
set(PACKAGE_VERSION "0.1.0")
string(REGEX MATCH "^[0-9]+\\.[0-9]+" _edgec_major_minor "${PACKAGE_VERSION}")
string(REGEX MATCH "^[0-9]+\\.[0-9]+" _edgec_wanted_major_minor "${PACKAGE_FIND_VERSION}")
set(PACKAGE_VERSION_EXACT FALSE)
set(PACKAGE_VERSION_COMPATIBLE FALSE)
if(NOT PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
elseif(_edgec_wanted_major_minor STREQUAL _edgec_major_minor
       AND NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
  set(PACKAGE_VERSION_EXACT TRUE)
endif()
