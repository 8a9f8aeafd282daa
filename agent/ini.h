// The ProxyFS INI dialect (spec/AGENT.md §2.2): sections, `Key = values` / `Key: values` lines,
// value lists, \u0020 and \u002C escapes, `;`/`#` comments, `.include`, command-line overrides.
//
// This layer only parses; it knows nothing about [Agent] keys or their types (agent/config.h).
// libinih is not used: its grammar differs in ways that matter here (see docs/configuration.md).
//
// Thread-safety: Document is a value type (no internal locking); the free functions are
// re-entrant. Blocking: ParseFile reads whole files (or stdin) synchronously.
// Errors: EINVAL for syntax, the read(2)/open(2) errno for I/O, ELOOP for include cycles; every
// message starts with "<file>:<line>: " (or the override's name) and never quotes a whole line,
// so a secret value cannot leak through a syntax error.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace agent::ini {

// Where a section or option was (last) set.
struct Origin {
  std::string file;        // as given / as resolved for includes; "<stdin>" for "-"
  int line = 0;            // 1-based; 0 for overrides and defaults
  int override_index = 0;  // 1-based position among the overrides; 0 = from a file
  std::string override_text_head;  // "Section.Key" of the override (never its value)

  // "file:12" or "command line override #2 (Agent.Key)".
  std::string ToString() const;
};

struct Option {
  std::vector<std::string> values;  // escapes already applied
  Origin origin;
};

struct Section {
  std::string name;
  Origin origin;                        // first header (or override) that created it
  std::vector<std::string> key_order;   // first-appearance order of keys
  std::map<std::string, Option> options;

  const Option* Find(const std::string& key) const;
  void Set(const std::string& key, Option option);  // replaces the whole value list
};

// A parsed configuration: sections in first-appearance order; repeated sections merge.
class Document {
 public:
  const Section* Find(const std::string& name) const;
  Section* FindOrAdd(const std::string& name, const Origin& origin);
  const std::vector<Section>& sections() const { return sections_; }

 private:
  std::vector<Section> sections_;
};

// Parses the file at `path` ("-" = stdin, whose includes are relative to the working directory)
// into `doc` (merging into what is already there). Files larger than kMaxFileBytes are refused.
base::Status ParseFile(const std::string& path, Document* doc);

// Parses `text` as if it were the contents of file `display_name` located in directory
// `base_dir` (for relative includes).
base::Status ParseText(std::string_view text, const std::string& display_name,
                       const std::string& base_dir, Document* doc);

// Applies one override "Section.Key=values" or "Section.Key: values"; `index` is its 1-based
// position (used in messages and Origin).
base::Status ApplyOverride(const std::string& text, int index, Document* doc);

// Splits a value list (already trimmed, comment-free) and applies the escapes. On error the
// message says what is wrong without a location (callers prefix it).
base::Result<std::vector<std::string>> SplitValues(std::string_view text);

// True if `text` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). On failure
// *bad_offset is the offset of the first offending byte.
bool IsValidUtf8(std::string_view text, size_t* bad_offset);

inline constexpr size_t kMaxFileBytes = 16 << 20;  // 16 MiB per file
inline constexpr int kMaxIncludeDepth = 32;

}  // namespace agent::ini
