# zf_link_modules(target lib...): links `target` with each optional module of the list that this
# configuration builds, and defines ZF_<MODULE>_ENABLED for it (the benchmarks and the tests).
function(zf_link_modules target)
  foreach(lib ${ARGN})
    if(TARGET ${lib})
      target_link_libraries(${target} PRIVATE ${lib})
      string(TOUPPER ${lib} up)
      target_compile_definitions(${target} PRIVATE ${up}_ENABLED=1)
    endif()
  endforeach()
endfunction()
