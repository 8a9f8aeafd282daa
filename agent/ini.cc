#include "agent/ini.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "base/unique_fd.h"

namespace agent::ini {
namespace {

constexpr std::string_view kBlanks = " \t";

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsSectionNameChar(char c) {
  return IsAsciiAlnum(c) || c == '_' || c == '-' || c == '/' || c == ':' || c == '.';
}

bool IsKeyChar(char c) { return IsAsciiAlnum(c) || c == '_' || c == '-' || c == '/' || c == '.'; }

bool IsValueChar(char c) {
  if (IsAsciiAlnum(c)) return true;
  switch (c) {
    case '_': case '=': case '*': case '-': case '+': case '/': case ':': case '.':
    case '[': case ']': case '"': case '{': case '}': case '\\':
      return true;
    default:
      return false;
  }
}

// Describes one character for a message without quoting its surroundings.
std::string DescribeChar(std::string_view text, size_t pos) {
  unsigned char c = static_cast<unsigned char>(text[pos]);
  char buf[32];
  if (c == '\r') return "a carriage return (DOS line ending?)";
  if (c >= 0x21 && c < 0x7f) {
    std::snprintf(buf, sizeof(buf), "'%c'", c);
  } else if (c < 0x80) {
    std::snprintf(buf, sizeof(buf), "byte 0x%02X", c);
  } else {
    std::snprintf(buf, sizeof(buf), "a non-ASCII character");
  }
  return buf;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

base::Error Invalid(const std::string& msg) { return base::Error(EINVAL, msg); }

std::string Unescape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  size_t i = 0;
  while (i < v.size()) {
    if (v[i] == '\\' && i + 6 <= v.size() && (v[i + 1] == 'u' || v[i + 1] == 'U')) {
      std::string_view hex = v.substr(i + 2, 4);
      if (hex == "0020") {
        out.push_back(' ');
        i += 6;
        continue;
      }
      if (hex == "002C" || hex == "002c") {
        out.push_back(',');
        i += 6;
        continue;
      }
    }
    out.push_back(v[i]);
    ++i;
  }
  return out;
}

// Reads a whole file (or fd 0 for "-"), refusing more than kMaxFileBytes.
base::Result<std::string> ReadAll(const std::string& path) {
  int fd = 0;
  base::UniqueFd owned;  // the file opened (stdin stays open)
  if (path != "-") {
    owned.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    fd = owned.get();
    if (fd < 0) {
      int err = errno;
      return base::Error(err, "cannot read " + Quote(path) + ": " + std::strerror(err));
    }
  }
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      return base::Error(err, "cannot read " + Quote(path == "-" ? "<stdin>" : path) + ": " +
                                  std::strerror(err));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > kMaxFileBytes) {
      return base::Error(EFBIG, "cannot read " + Quote(path == "-" ? "<stdin>" : path) +
                                    ": larger than " + std::to_string(kMaxFileBytes) + " bytes");
    }
  }
  return data;
}

std::string CanonicalKey(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::path(path), ec);
  if (ec) return std::filesystem::path(path).lexically_normal().string();
  return p.string();
}

class Parser {
 public:
  explicit Parser(Document* doc) : doc_(doc) {}

  base::Status File(const std::string& path, const std::string& display,
                    const std::string& base_dir, const std::string& key) {
    auto data = ReadAll(path);
    if (!data.ok()) return data.error();
    return Text(*data, display, base_dir, key);
  }

  base::Status Text(std::string_view text, const std::string& display, const std::string& base_dir,
                    const std::string& key) {
    for (const auto& k : stack_) {
      if (k == key) {
        std::string chain;
        for (const auto& s : stack_) chain += s + " -> ";
        return base::Error(ELOOP, "include cycle: " + chain + key);
      }
    }
    if (static_cast<int>(stack_.size()) >= kMaxIncludeDepth) {
      return base::Error(ELOOP, display + ": includes nested deeper than " +
                                    std::to_string(kMaxIncludeDepth) + " levels");
    }
    stack_.push_back(key);
    base::Status st = Lines(text, display, base_dir);
    stack_.pop_back();
    return st;
  }

 private:
  base::Status Lines(std::string_view text, const std::string& display,
                     const std::string& base_dir) {
    size_t bad = 0;
    if (!IsValidUtf8(text, &bad)) {
      size_t line_start = text.rfind('\n', bad == 0 ? std::string_view::npos : bad - 1);
      line_start = (line_start == std::string_view::npos || bad == 0) ? 0 : line_start + 1;
      int line_no = 1;
      for (size_t i = 0; i < bad; ++i) line_no += text[i] == '\n';
      char buf[96];
      std::snprintf(buf, sizeof(buf), ": not valid UTF-8 (byte 0x%02X at column %zu)",
                    static_cast<unsigned char>(text[bad]), bad - line_start + 1);
      return Invalid(display + ":" + std::to_string(line_no) + buf);
    }
    if (!text.empty() && text.back() != '\n') {
      int lines = 1;
      for (char c : text) lines += c == '\n';
      return Invalid(display + ":" + std::to_string(lines) +
                     ": file does not end with a newline (the last line must be terminated)");
    }
    Section* current = nullptr;
    bool after_include = false;
    int line_no = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      std::string_view raw = text.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      std::string where = display + ":" + std::to_string(line_no) + ": ";

      std::string_view line = raw;
      line = line.substr(0, line.find(';'));
      line = line.substr(0, line.find('#'));
      line = Trim(line);
      if (line.empty()) continue;

      Origin origin;
      origin.file = display;
      origin.line = line_no;

      if (line.front() == '[') {
        if (line.back() != ']' || line.size() < 2) {
          return Invalid(where + "malformed section header: expected \"[Name]\"");
        }
        std::string_view name = line.substr(1, line.size() - 2);
        if (name.empty()) return Invalid(where + "empty section name \"[]\"");
        for (size_t i = 0; i < name.size(); ++i) {
          if (!IsSectionNameChar(name[i])) {
            return Invalid(where + "section name " + Quote(name) + " contains " +
                           DescribeChar(name, i) +
                           "; allowed: letters, digits and _ - / : .");
          }
        }
        current = doc_->FindOrAdd(std::string(name), origin);
        after_include = false;
        continue;
      }

      if (line.substr(0, 8) == ".include" &&
          (line.size() == 8 || line[8] == ' ' || line[8] == '\t')) {
        std::string_view target = Trim(line.substr(8));
        if (target.empty()) return Invalid(where + ".include needs a file name");
        std::filesystem::path p{std::string(target)};
        std::filesystem::path full =
            (p.is_absolute() || base_dir.empty()) ? p : std::filesystem::path(base_dir) / p;
        std::string full_s = full.string();
        std::string parent = full.parent_path().string();
        auto data = ReadAll(full_s);
        if (!data.ok()) {
          return base::Error(data.error().Errno(), where + ".include " + Quote(target) + ": " +
                                                       data.error().Message());
        }
        base::Status st = Text(*data, full_s, parent, CanonicalKey(full_s));
        if (!st.ok()) {
          if (st.error().Errno() == ELOOP && st.error().Message().rfind("include cycle", 0) == 0) {
            return base::Error(ELOOP, where + st.error().Message());
          }
          return st;
        }
        current = nullptr;  // a section header must follow an include
        after_include = true;
        continue;
      }

      size_t sep = line.find_first_of(":=");
      if (sep == std::string_view::npos) {
        std::string_view head = line.substr(0, line.find_first_of(kBlanks));
        if (head.size() > 32) head = head.substr(0, 32);
        return Invalid(where + "malformed line starting " + Quote(head) +
                       ": expected \"[Section]\", \"Key = values\", \"Key: values\" or "
                       "\".include path\"");
      }
      std::string_view key = Trim(line.substr(0, sep));
      if (key.empty()) return Invalid(where + "missing key name before '" + line[sep] + "'");
      for (size_t i = 0; i < key.size(); ++i) {
        if (!IsKeyChar(key[i])) {
          return Invalid(where + "key name " + Quote(key.substr(0, 32)) + " contains " +
                         DescribeChar(key, i) + "; allowed: letters, digits and _ - / .");
        }
      }
      if (current == nullptr) {
        return Invalid(where + "key " + Quote(key) +
                       (after_include
                            ? " follows an .include without a new [Section] header (an .include "
                              "resets the current section)"
                            : " appears before any [Section] header"));
      }
      auto values = SplitValues(Trim(line.substr(sep + 1)));
      if (!values.ok()) {
        return Invalid(where + "[" + current->name + "] " + std::string(key) + ": " +
                       values.error().Message());
      }
      current->Set(std::string(key), Option{std::move(*values), origin});
    }
    return base::Ok();
  }

  Document* doc_;
  std::vector<std::string> stack_;  // canonical paths of the files being parsed
};

}  // namespace

std::string Origin::ToString() const {
  if (override_index > 0) {
    return "command line override #" + std::to_string(override_index) + " (" +
           override_text_head + ")";
  }
  if (line > 0) return file + ":" + std::to_string(line);
  return file;
}

const Option* Section::Find(const std::string& key) const {
  auto it = options.find(key);
  return it == options.end() ? nullptr : &it->second;
}

void Section::Set(const std::string& key, Option option) {
  auto it = options.find(key);
  if (it == options.end()) {
    key_order.push_back(key);
    options.emplace(key, std::move(option));
  } else {
    it->second = std::move(option);
  }
}

const Section* Document::Find(const std::string& name) const {
  for (const auto& s : sections_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Section* Document::FindOrAdd(const std::string& name, const Origin& origin) {
  for (auto& s : sections_) {
    if (s.name == name) return &s;
  }
  Section s;
  s.name = name;
  s.origin = origin;
  sections_.push_back(std::move(s));
  return &sections_.back();
}

base::Status ParseFile(const std::string& path, Document* doc) {
  Parser parser(doc);
  if (path == "-") return parser.File("-", "<stdin>", "", "<stdin>");
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parser.File(path, path, parent, CanonicalKey(path));
}

base::Status ParseText(std::string_view text, const std::string& display_name,
                       const std::string& base_dir, Document* doc) {
  Parser parser(doc);
  return parser.Text(text, display_name, base_dir, display_name);
}

base::Status ApplyOverride(const std::string& text, int index, Document* doc) {
  std::string what = "command line override #" + std::to_string(index);
  const std::string expected = ": expected \"Section.Key=values\" or \"Section.Key: values\"";
  size_t dot = text.find('.');
  size_t sep = text.find_first_of(":=", dot == std::string::npos ? 0 : dot + 1);
  if (dot == std::string::npos || sep == std::string::npos) {
    return Invalid(what + expected);
  }
  std::string_view all(text);
  std::string_view section = Trim(all.substr(0, dot));
  std::string_view key = Trim(all.substr(dot + 1, sep - dot - 1));
  if (section.empty()) return Invalid(what + ": empty section name" + expected);
  if (key.empty()) return Invalid(what + ": empty key name" + expected);
  for (size_t i = 0; i < section.size(); ++i) {
    if (!IsSectionNameChar(section[i])) {
      return Invalid(what + ": section name " + Quote(section.substr(0, 32)) + " contains " +
                     DescribeChar(section, i) + "; allowed: letters, digits and _ - / : .");
    }
  }
  for (size_t i = 0; i < key.size(); ++i) {
    if (!IsKeyChar(key[i])) {
      return Invalid(what + ": key name " + Quote(key.substr(0, 32)) + " contains " +
                     DescribeChar(key, i) + "; allowed: letters, digits and _ - / .");
    }
  }
  Origin origin;
  origin.override_index = index;
  origin.override_text_head = std::string(section) + "." + std::string(key);
  auto values = SplitValues(Trim(all.substr(sep + 1)));
  if (!values.ok()) {
    return Invalid(origin.ToString() + ": [" + std::string(section) + "] " + std::string(key) +
                   ": " + values.error().Message());
  }
  Section* s = doc->FindOrAdd(std::string(section), origin);
  s->Set(std::string(key), Option{std::move(*values), origin});
  return base::Ok();
}

base::Result<std::vector<std::string>> SplitValues(std::string_view text) {
  std::vector<std::string> values;
  if (text.empty()) return values;
  size_t i = 0;
  const size_t n = text.size();
  for (;;) {
    size_t start = i;
    while (i < n && text[i] != ' ' && text[i] != '\t' && text[i] != ',') ++i;
    std::string_view tok = text.substr(start, i - start);
    if (tok.empty()) {
      return Invalid("empty value in the list (a leading, trailing or doubled comma)");
    }
    for (size_t k = 0; k < tok.size(); ++k) {
      if (IsValueChar(tok[k])) continue;
      if (tok[k] == '$' && k + 1 == tok.size()) continue;
      std::string why = tok[k] == '$' ? "'$' (allowed only as the last character of a value)"
                                      : DescribeChar(tok, k);
      return Invalid("value " + std::to_string(values.size() + 1) + " contains " + why +
                     " at column " + std::to_string(start + k + 1) +
                     " of the value text; allowed: letters, digits, _ = * - + / : . [ ] \" { } \\ "
                     "and a final $ (write a space as \\u0020, a comma as \\u002C)");
    }
    values.push_back(Unescape(tok));
    size_t j = i;
    while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
    if (j < n && text[j] == ',') {
      ++j;
      while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
      if (j == n) return Invalid("empty value in the list (a leading, trailing or doubled comma)");
    }
    if (j >= n) break;
    i = j;
  }
  return values;
}

bool IsValidUtf8(std::string_view text, size_t* bad_offset) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      *bad_offset = i;
      return false;
    }
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) {
        *bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

}  // namespace agent::ini
