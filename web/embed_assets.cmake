# Writes a C++ file holding the text files of web/www, so the server needs no files beside its
# binary.
file(GLOB files "${WWW_DIR}/*")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME)
  file(READ "${f}" content)
  string(APPEND body "      {\"/${name}\", R\"matthan_www(${content})matthan_www\"},\n")
endforeach()
file(WRITE "${OUT}.tmp" "// Generated from web/www by embed_assets.cmake.\n#include \"matthan/web/assets.hpp\"\n#include <map>\n#include <string>\nnamespace matthan::web {\nstd::optional<std::string_view> asset(const std::string& path) {\n  static const std::map<std::string, std::string> files{\n${body}  };\n  const auto it = files.find(path == \"/\" ? \"/index.html\" : path);\n  if (it == files.end()) return std::nullopt;\n  return std::string_view(it->second);\n}\n}  // namespace matthan::web\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
