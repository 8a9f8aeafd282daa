// Test helper: put file data "on the server" the way another agent would (ProvisionObject, PUT,
// Wrote), bypassing the DataCache under test.
#pragma once

#include <string>

#include "tests/component/fakes/fake_metadata_client.h"
#include "tests/component/fakes/fake_object_store.h"

namespace fakes {

// Writes `data` at file offset `off` of `ino` as one new LogSegment whose object holds `prefix`
// dead bytes before the data (so object offsets differ from file offsets). Returns the object
// name. Aborts the test binary on failure (fakes only fail when told to).
inline std::string SeedWrite(FakeObjectStore& os, FakeMetadataClient& md, int64_t ino,
                             uint64_t off, const std::string& data, uint64_t prefix = 0) {
  auto p = md.ProvisionObject({});
  if (!p.ok()) std::abort();
  const std::string& path = p->PhysPath;
  auto s1 = path.rfind('/');
  auto s2 = path.rfind('/', s1 - 1);
  std::string container = path.substr(s2 + 1, s1 - s2 - 1), object = path.substr(s1 + 1);
  if (!os.Put(container, object, std::string(prefix, 'x') + data).ok()) std::abort();
  swift::jrpcfs::WroteRequest w;
  w.InodeNumber = ino;
  w.ContainerName = container;
  w.ObjectName = object;
  w.FileOffset = {off};
  w.ObjectOffset = {prefix};
  w.Length = {data.size()};
  if (!md.Wrote(w).ok()) std::abort();
  return object;
}

}  // namespace fakes
