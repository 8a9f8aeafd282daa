// Keeps agent/ readable (issue 12): no function body over 120 lines in agent/*.cc and agent/*.h.
//
// The scan is a brace-depth scan, not a parser: comments, string and character literals and
// preprocessor lines are blanked first; then at namespace/class scope a '{' whose text since the
// last ';', '{' or '}' contains a ')' opens a function body (namespace, class, struct, union,
// enum and '= {' initialisers do not), and everything up to its matching '}' belongs to that
// function (lambdas and local classes included). A brace-initialised member in a constructor's
// initialiser list (") : a_{1}, b_(2) {") is recognised as such. The length is counted from the
// line of the opening brace to the line of the closing one, both included.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace {

struct LongFunction {
  int line = 0;   // of the opening brace
  int lines = 0;  // opening to closing brace, inclusive
};

// Blanks comments, literals and preprocessor lines, keeping every newline.
std::string Blank(const std::string& in) {
  std::string out = in;
  size_t i = 0;
  const size_t n = in.size();
  bool line_start = true;
  while (i < n) {
    char c = in[i];
    if (line_start && c == '#') {  // preprocessor line, with continuations
      while (i < n && in[i] != '\n') {
        if (in[i] == '\\' && i + 1 < n && in[i + 1] == '\n') {
          out[i] = ' ';
          i += 2;
          continue;
        }
        out[i++] = ' ';
      }
      continue;
    }
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (c != ' ' && c != '\t') line_start = false;
    if (c == '/' && i + 1 < n && in[i + 1] == '/') {
      while (i < n && in[i] != '\n') out[i++] = ' ';
    } else if (c == '/' && i + 1 < n && in[i + 1] == '*') {
      out[i] = out[i + 1] = ' ';
      i += 2;
      while (i < n && !(in[i] == '*' && i + 1 < n && in[i + 1] == '/')) {
        if (in[i] != '\n') out[i] = ' ';
        ++i;
      }
      if (i < n) out[i] = out[i + 1] = ' ', i += 2;
    } else if (c == 'R' && i + 1 < n && in[i + 1] == '"') {  // raw string R"delim( ... )delim"
      size_t open = in.find('(', i + 2);
      std::string delim = ")" + in.substr(i + 2, open - i - 2) + "\"";
      size_t end = in.find(delim, open);
      end = end == std::string::npos ? n : end + delim.size();
      for (; i < end; ++i) {
        if (in[i] != '\n') out[i] = ' ';
      }
    } else if (c == '"' || c == '\'') {
      bool digit_sep = c == '\'' && i > 0 && std::isalnum(static_cast<unsigned char>(in[i - 1]));
      if (digit_sep) {  // 1'000'000
        out[i++] = ' ';
        continue;
      }
      out[i++] = ' ';
      while (i < n && in[i] != c && in[i] != '\n') {
        if (in[i] == '\\') out[i++] = ' ';
        if (i < n && in[i] != '\n') out[i++] = ' ';
      }
      if (i < n && in[i] == c) out[i++] = ' ';
    } else {
      ++i;
    }
  }
  return out;
}

bool HasWord(const std::string& text, const std::string& word) {
  for (size_t p = text.find(word); p != std::string::npos; p = text.find(word, p + 1)) {
    bool left = p == 0 || !(std::isalnum(static_cast<unsigned char>(text[p - 1])) || text[p - 1] == '_');
    size_t e = p + word.size();
    bool right = e >= text.size() || !(std::isalnum(static_cast<unsigned char>(text[e])) || text[e] == '_');
    if (left && right) return true;
  }
  return false;
}

// A '{' at scope level with this text before it (since the last ';', '{' or '}'): does it open
// a function body?
bool OpensFunction(const std::string& header) {
  if (header.find(')') == std::string::npos) return false;
  for (const char* w : {"namespace", "class", "struct", "union", "enum"}) {
    if (HasWord(header, w) && header.find('(') > header.find(w)) return false;
  }
  const size_t eq = header.find('=');
  if (eq != std::string::npos && eq < header.find('(') && header.compare(eq, 2, "==") != 0 &&
      !HasWord(header.substr(0, eq), "operator")) {
    return false;  // "x = f({...})"-like initialiser at scope
  }
  return true;
}

// Is this '{' a braced member initialiser ("... ) : a_(1), b_{2}") rather than the body?
bool InitialiserBrace(const std::string& header) {
  size_t close = header.find(')');
  if (close == std::string::npos) return false;
  size_t colon = header.find(':', close);
  if (colon == std::string::npos || (colon + 1 < header.size() && header[colon + 1] == ':')) {
    return false;
  }
  size_t k = header.find_last_not_of(" \t\n");
  return k != std::string::npos && k > colon &&
         (std::isalnum(static_cast<unsigned char>(header[k])) || header[k] == '_' ||
          header[k] == '>');
}

std::vector<LongFunction> LongFunctions(const std::string& source, int limit) {
  const std::string s = Blank(source);
  std::vector<LongFunction> out;
  std::string header;
  int line = 1;
  int scope_depth = 0;  // braces open outside functions (namespaces, classes, ...)
  int func_depth = 0;   // braces open inside the current function (0: not in one)
  int func_start = 0;
  int init_depth = 0;   // inside a braced member initialiser of a constructor
  for (char c : s) {
    if (c == '\n') ++line;
    if (func_depth > 0) {
      if (c == '{') ++func_depth;
      if (c == '}' && --func_depth == 0) {
        int len = line - func_start + 1;
        if (len > limit) out.push_back({func_start, len});
        header.clear();
      }
      continue;
    }
    if (init_depth > 0) {
      header += c;
      if (c == '{') ++init_depth;
      if (c == '}') --init_depth;
      continue;
    }
    if (c == '{') {
      if (InitialiserBrace(header)) {
        init_depth = 1;
        header += c;
      } else if (OpensFunction(header)) {
        func_depth = 1;
        func_start = line;
      } else {
        ++scope_depth;
        header.clear();
      }
    } else if (c == '}' || c == ';') {
      if (c == '}') --scope_depth;
      header.clear();
    } else {
      header += c;
    }
  }
  return out;
}

std::string FunctionOf(int body_lines, const std::string& signature = "int F(int a) {") {
  std::string s = signature + "\n";
  for (int i = 0; i < body_lines - 2; ++i) s += "  a += 1;  // {\n";
  return s + "}\n";
}

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("the checker flags a 121-line function and passes a 120-line one") {
  CHECK(LongFunctions(FunctionOf(120), 120).empty());
  auto r = LongFunctions(FunctionOf(121), 120);
  REQUIRE(r.size() == 1);
  CHECK(r[0].line == 1);
  CHECK(r[0].lines == 121);
}

TEST_CASE("the checker sees functions inside namespaces and classes, not the scopes") {
  const std::string big = FunctionOf(121, "  void G() const {");
  const std::string small = FunctionOf(30, "  void H() {");
  std::string src = "namespace a {\nnamespace {\nclass C : public B {\n public:\n" + small + big +
                    "};\n}  // namespace\n}  // namespace a\n";
  auto r = LongFunctions(src, 120);
  REQUIRE(r.size() == 1);
  CHECK(r[0].lines == 121);
  // The 200-line namespace around 119-line functions is not a function.
  std::string ns = "namespace b {\n" + FunctionOf(119) + FunctionOf(119) + "}\n";
  CHECK(LongFunctions(ns, 120).empty());
}

TEST_CASE("the checker counts lambdas, braced initialisers and literals right") {
  // A constructor with braced member initialisers: the body is what counts.
  std::string ctor = FunctionOf(121, "C::C(int x) : a_{x}, b_(std::vector<int>{1, 2}) {");
  auto r = LongFunctions(ctor, 120);
  REQUIRE(r.size() == 1);
  CHECK(r[0].lines == 121);
  // Braces in comments, strings and characters do not count; lambdas belong to their function.
  std::string lit = "int F() {\n  const char* s = \"}}}\";  /* } */\n  char c = '}';\n"
                    "  auto f = [&]() {\n    return 1;\n  };\n  return f();\n}\n";
  CHECK(LongFunctions(lit, 120).empty());
  CHECK(LongFunctions(lit, 7).size() == 1);
  // Table initialisers at scope are not functions.
  std::string table = "const int kT[] = {\n";
  for (int i = 0; i < 200; ++i) table += "  f(" + std::to_string(i) + "),\n";
  table += "};\n";
  CHECK(LongFunctions(table, 120).empty());
}

TEST_CASE("no function in agent/ is over 120 lines") {
  const std::filesystem::path dir = std::filesystem::path(PFS_SOURCE_DIR) / "agent";
  int files = 0;
  std::string report;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (ext != ".cc" && ext != ".h") continue;
    ++files;
    for (const auto& f : LongFunctions(Slurp(e.path()), 120)) {
      report += e.path().filename().string() + ":" + std::to_string(f.line) + ": " +
                std::to_string(f.lines) + " lines\n";
    }
  }
  CHECK(files > 10);
  INFO(report);
  CHECK(report.empty());
}
