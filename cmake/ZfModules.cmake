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

# zf_engine_host(target): a program that may load the CUDA engine's module (libzfviz_cuda.so, see
# cuda/CMakeLists.txt). The module calls core's functions in the program, so the program carries
# the whole of core and exports the project's symbols (zf_*, and only those: nothing else of the
# program can stand in for a library's own); the module is built with it, since nothing links it.
function(zf_engine_host target)
  target_link_options(${target} PRIVATE "LINKER:--whole-archive" "$<TARGET_FILE:zf_core>"
                      "LINKER:--no-whole-archive" "LINKER:--export-dynamic-symbol=zf_*")
  add_dependencies(${target} zf_core)
  if(TARGET zf_cuda)
    add_dependencies(${target} zf_cuda)
  endif()
endfunction()
