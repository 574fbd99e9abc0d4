# Image references: Docker's grammar and normalisation ('alpine' is docker.io/library/alpine:latest),
# checked without regular expressions (compiling them costs more than the rest of the shim's
# start-up on a busy worker). Used by the job's validation on the submit side and by the shim, so
# a malformed reference fails before submission with the message the worker would give.
# Standard library only (worker side).

import os
from typing import List, NamedTuple, Optional

DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io")
# unpacked.cern.ch names Docker Hub like this; we also accept docker.io/ as the directory name
_TREE_REGISTRY = {DOCKER_HUB: ("registry.hub.docker.com", "docker.io")}
_LOWER_ALNUM = set("abcdefghijklmnopqrstuvwxyz0123456789")
_HEX = set("0123456789abcdefABCDEF")


class ReferenceError(ValueError):
    """Not an image reference Docker would accept; the message says which part is wrong."""


def _valid_component(part: str) -> bool:
    if not part or part[0] not in _LOWER_ALNUM or part[-1] not in _LOWER_ALNUM:
        return False
    if not set(part) <= _LOWER_ALNUM | set("._-"):
        return False
    return ".." not in part and "._" not in part and "_." not in part and "___" not in part


def _valid_tag(tag: str) -> bool:
    return 0 < len(tag) <= 128 and tag[0] != "." and tag[0] != "-" and set(tag) <= _LOWER_ALNUM | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-")


def _valid_digest(digest: str) -> bool:
    algorithm, _, hexpart = digest.partition(":")
    return bool(algorithm) and set(algorithm) <= _LOWER_ALNUM and len(hexpart) >= 32 and set(hexpart) <= _HEX


class ImageRef(NamedTuple):
    registry: str
    repository: str
    tag: Optional[str]
    digest: Optional[str]

    def __str__(self) -> str:
        text = "{}/{}".format(self.registry, self.repository)
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def tree_candidates(self, root: str) -> List[str]:
        """Where an unpacked tree rooted at root keeps this image (without a file suffix): a
        reference pinned to a digest (repository:tag@digest) by its digest first, then by its tag."""
        if self.tag and self.digest:
            leaves = [self.repository + "@" + self.digest, self.repository + ":" + self.tag]
        else:
            leaves = [self.repository + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")]
        return [os.path.join(root, reg, leaf) for leaf in leaves for reg in _TREE_REGISTRY.get(self.registry,
                                                                                              (self.registry,))]

    @property
    def pinned(self) -> "ImageRef":
        """What a pull asks for: the digest alone when there is one (the tag is only its name)."""
        return self._replace(tag=None) if self.digest else self

    @property
    def cache_name(self) -> str:
        # the naming cwl-utils uses for CWL_SINGULARITY_CACHE, so such a cache can be shared; a
        # pinned image by its digest alone (one entry whatever tags name it)
        return str(self.pinned).replace("_", "___").replace("/", "_s_")

    @property
    def shifter_name(self) -> str:
        repo = self.repository
        if self.registry == DOCKER_HUB:
            repo = repo[len("library/"):] if repo.startswith("library/") else repo
        else:
            repo = self.registry + "/" + repo
        return "docker:{}:{}".format(repo, self.tag or "latest")


def parse_reference(text: str) -> ImageRef:
    """Normalise as Docker does: 'alpine' is docker.io/library/alpine:latest."""
    original = text
    if text.startswith("docker://"):
        text = text[len("docker://"):]
    if not text or len(text.split()) != 1 or text != text.strip():  # no whitespace anywhere
        raise ReferenceError("invalid image reference {!r}".format(original))
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _valid_digest(digest):
            raise ReferenceError("invalid image reference {!r}: bad digest {!r}".format(original, digest))
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _valid_tag(tag):
            raise ReferenceError("invalid image reference {!r}: bad tag {!r}".format(original, tag))
    parts = text.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, parts = parts[0], parts[1:]
    else:
        registry = DOCKER_HUB
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if len(parts) == 1:
            parts = ["library"] + parts
    for part in parts:
        if not _valid_component(part):
            raise ReferenceError("invalid image reference {!r}: bad name component {!r}".format(original, part))
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry, "/".join(parts), tag, digest)
