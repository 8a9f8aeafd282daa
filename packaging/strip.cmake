# CPACK_PRE_BUILD_SCRIPTS: strips the packaged ELF executables like dh_strip does (debug
# symbols, .comment and .note sections), in the staging directory before the .deb is made.
find_program(PFS_STRIP NAMES strip REQUIRED)
file(GLOB_RECURSE pfs_candidates "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/bin/*"
     "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/sbin/*")
foreach(f IN LISTS pfs_candidates)
  file(READ "${f}" pfs_magic LIMIT 4 HEX)
  if(pfs_magic STREQUAL "7f454c46")
    execute_process(COMMAND ${PFS_STRIP} --remove-section=.comment --remove-section=.note
                            --strip-unneeded "${f}"
                    RESULT_VARIABLE pfs_rc)
    if(NOT pfs_rc EQUAL 0)
      message(FATAL_ERROR "strip ${f} failed (${pfs_rc})")
    endif()
  endif()
endforeach()
