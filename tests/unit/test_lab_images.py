"""The lab's Debian-root images (lab/images.py) and image aliases (lab/docker_engine.py), without
a Docker engine or debootstrap: names, commands, flavours, the import command line, the cache."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest

from lab import docker_engine, images
from lab.topology import Paths
from runbook.specs import DatabaseSpec

COMPOSE_NAMES = {
    "lab/php-apache:1": ("wordpress:6-apache",),
    "lab/php-fpm:1": ("php:8.2-fpm",),
    "lab/httpd:1": ("httpd:2.4",),
    "lab/varnish:1": ("varnish:7.1",),
}


def _by_tag() -> dict[str, images.Image]:
    return {image.tag: image for image in images.APP_IMAGES}


def _change(image: images.Image, instruction: str) -> list[str]:
    return [c for c in image.changes if c.split(" ", 1)[0] == instruction]


def test_app_images_are_tagged_under_the_names_compose_files_use() -> None:
    assert {image.tag: image.aliases for image in images.APP_IMAGES} == COMPOSE_NAMES


def test_app_images_share_one_root_and_one_cached_tarball(tmp_path: Path) -> None:
    roots = {image.rootfs for image in images.APP_IMAGES}
    assert roots == {images.APP_ROOTFS}
    paths = Paths(tmp_path)
    assert {image.rootfs.tarball(paths) for image in images.APP_IMAGES} == {
        tmp_path / "images" / f"apps-rootfs-{images.APP_ROOTFS.flavour}.tar"
    }
    for package in ("apache2", "libapache2-mod-php8.2", "php8.2-fpm", "php8.2-cli", "php8.2-mysql", "varnish"):
        assert package in images.APP_PACKAGES


def test_each_app_image_has_its_own_command_and_port() -> None:
    by_tag = _by_tag()
    apache = ['CMD ["/usr/local/bin/apache2-foreground"]']
    assert _change(by_tag["lab/php-apache:1"], "CMD") == apache
    assert _change(by_tag["lab/httpd:1"], "CMD") == apache
    assert _change(by_tag["lab/php-fpm:1"], "CMD") == ['CMD ["/usr/sbin/php-fpm8.2", "-F"]']
    assert _change(by_tag["lab/varnish:1"], "CMD") == [
        'CMD ["/usr/sbin/varnishd", "-F", "-a", ":80", "-f", "/etc/varnish/default.vcl", "-s", "malloc,64m"]'
    ]
    assert {tag: _change(image, "EXPOSE") for tag, image in by_tag.items()} == {
        "lab/php-apache:1": ["EXPOSE 80"],
        "lab/php-fpm:1": ["EXPOSE 9000"],
        "lab/httpd:1": ["EXPOSE 80"],
        "lab/varnish:1": ["EXPOSE 80"],
    }


def test_the_apache_images_choose_their_modules_by_env() -> None:
    by_tag = _by_tag()
    assert "ENV LAB_APACHE_FLAVOUR=mod_php" in by_tag["lab/php-apache:1"].changes
    assert "ENV LAB_APACHE_FLAVOUR=fcgi" in by_tag["lab/httpd:1"].changes
    # Each flavour the images name has its folder of modules in the root.
    setup = (images.TEMPLATES / "setup.sh").read_text()
    for flavour in ("mod_php", "fcgi"):
        assert f"/etc/apache2/lab-flavours/{flavour}" in setup
    assert "${LAB_APACHE_FLAVOUR}" in (images.TEMPLATES / "lab-flavour.load").read_text()


def test_the_image_configuration_honours_traefik_and_listens_as_asked() -> None:
    conf = (images.TEMPLATES / "lab-image.conf").read_text()
    assert 'SetEnvIf X-Forwarded-Proto "^https$" HTTPS=on' in conf
    assert "AllowOverride All" in conf
    pool = (images.TEMPLATES / "zz-lab.conf").read_text()
    assert "listen = 0.0.0.0:9000" in pool
    assert "clear_env = no" in pool
    assert "a2enmod -q rewrite" in (images.TEMPLATES / "setup.sh").read_text()


def test_import_argv_gives_each_change_and_the_flavour_label_last() -> None:
    image = _by_tag()["lab/php-fpm:1"]
    argv = images.import_argv(image, Path("/x/apps.tar"), "docker")
    changes = [argv[i + 1] for i, word in enumerate(argv) if word == "-c"]
    assert argv[:2] == ["docker", "import"]
    assert argv[-2:] == ["/x/apps.tar", "lab/php-fpm:1"]
    assert changes == [*image.changes, f"LABEL lab.image.flavour={image.flavour}"]
    assert len(argv) == 2 + 2 * len(changes) + 2


def test_the_mail_image_keeps_its_flavour_label_and_changes() -> None:
    legacy = hashlib.sha256(" ".join(("bookworm", *images.PACKAGES)).encode()).hexdigest()[:10]
    assert images.FLAVOUR == legacy == images.MAIL.flavour
    assert images.MAIL.import_changes() == ('CMD ["/bin/sh"]', "ENV LANG=C.UTF-8", f"LABEL lab.mail.flavour={legacy}")
    assert images.tarball(Paths(Path("/lab"))) == Path(f"/lab/images/mail-rootfs-{legacy}.tar")


def test_flavour_follows_packages_files_and_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.conf").write_text("one\n")
    (tmp_path / "setup.sh").write_text("true\n")
    monkeypatch.setattr(images, "TEMPLATES", tmp_path)
    root = images.Rootfs("t", ("apache2",), files=(("a.conf", "/etc/a.conf", 0o644),), setup="setup.sh")
    first = root.flavour
    assert dataclasses.replace(root, packages=("apache2", "varnish")).flavour != first
    assert dataclasses.replace(root, files=(("a.conf", "/etc/b.conf", 0o644),)).flavour != first
    assert dataclasses.replace(root, files=(("a.conf", "/etc/a.conf", 0o755),)).flavour != first
    (tmp_path / "a.conf").write_text("two\n")
    second = root.flavour
    assert second != first
    (tmp_path / "setup.sh").write_text("false\n")
    assert root.flavour not in (first, second)
    assert len(first) == 10


def test_image_flavour_covers_its_changes_but_not_the_tarball(tmp_path: Path) -> None:
    image = _by_tag()["lab/varnish:1"]
    other = dataclasses.replace(image, changes=(*image.changes, "ENV X=1"))
    assert other.flavour != image.flavour
    assert other.flavour.startswith(images.APP_ROOTFS.flavour + "-")
    assert other.rootfs.tarball(Paths(tmp_path)) == image.rootfs.tarball(Paths(tmp_path))
    flavours = {i.flavour for i in images.APP_IMAGES}
    assert len(flavours) == len(images.APP_IMAGES)
    assert all(" " not in f for f in flavours)


def test_templates_exist_and_the_scripts_parse() -> None:
    for src, dest, _mode in images.APP_ROOTFS.files:
        assert (images.TEMPLATES / src).is_file(), src
        assert dest.startswith("/")
    assert images.APP_ROOTFS.setup is not None
    for script in (images.APP_ROOTFS.setup, "apache2-foreground"):
        subprocess.run(["sh", "-n", str(images.TEMPLATES / script)], check=True)
    assert images.APP_ROOTFS.material().startswith("bookworm apache2 ")


def test_debootstrap_argv_is_minbase_with_the_packages() -> None:
    argv = images.debootstrap_argv(images.APP_ROOTFS, Path("/tmp/r"))
    assert argv[:2] == ["debootstrap", "--variant=minbase"]
    assert argv[2] == "--include=" + ",".join(images.APP_PACKAGES)
    assert argv[3:5] == ["bookworm", "/tmp/r"]


def test_build_rootfs_caches_the_configured_root_and_drops_stale_tarballs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "run.sh").write_text("#!/bin/sh\necho hi\n")
    monkeypatch.setattr(images, "TEMPLATES", templates)
    root = images.Rootfs("t", ("hello",), files=(("run.sh", "/usr/local/bin/run", 0o755),))

    def fake_debootstrap(rootfs: images.Rootfs, target: Path, log: Path) -> None:
        (target / "var/cache/apt/archives").mkdir(parents=True)
        (target / "var/cache/apt/archives/hello.deb").write_text("deb")
        (target / "var/lib/apt/lists").mkdir(parents=True)
        (target / "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease").write_text("x")
        (target / "etc").mkdir()
        (target / "etc/hostname").write_text("lab\n")

    monkeypatch.setattr(images, "debootstrap", fake_debootstrap)
    paths = Paths(tmp_path / "lab")
    (paths.root / "images").mkdir(parents=True)
    stale = paths.root / "images" / "t-rootfs-0000000000.tar"
    stale.write_text("old")
    other = paths.root / "images" / "mail-rootfs-0000000000.tar"
    other.write_text("mail")

    seconds = images.build_rootfs(paths, root)

    target = root.tarball(paths)
    assert seconds >= 0 and target.exists()
    assert not stale.exists() and other.exists()
    assert not list((paths.root / "images").glob("*.partial"))
    assert not [p for p in (paths.root / "images").iterdir() if p.is_dir()]  # the temp root is gone
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        run = tar.getmember("./usr/local/bin/run")
    assert run.mode & 0o777 == 0o755
    assert "./etc/hostname" in names
    assert "./var/cache/apt/archives/hello.deb" not in names
    assert "./var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease" not in names


class _FakeEngine:
    """image_present/build_rootfs/import_image/ensure_alias of a fake engine, recording calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, present: set[str]) -> None:
        self.present = present
        self.calls: list[tuple[str, str]] = []
        self.paths = Paths(tmp_path)
        monkeypatch.setattr(images, "image_present", lambda image: image.tag in self.present)
        monkeypatch.setattr(images, "build_rootfs", self.build)
        monkeypatch.setattr(images, "import_image", self.import_)
        monkeypatch.setattr(docker_engine, "ensure_alias", self.alias)

    def build(self, paths: Paths, rootfs: images.Rootfs) -> float:
        self.calls.append(("build", rootfs.name))
        target = rootfs.tarball(paths)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("tar")
        return 1.0

    def import_(self, paths: Paths, image: images.Image) -> None:
        self.calls.append(("import", image.tag))
        self.present.add(image.tag)

    def alias(self, source: str, alias: str) -> bool:
        self.calls.append(("alias", alias))
        new = alias not in self.present
        self.present.add(alias)
        return new


def test_ensure_app_images_builds_the_root_once_and_imports_each_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _FakeEngine(monkeypatch, tmp_path, set())
    done = images.ensure_app_images(engine.paths)
    assert [c for c in engine.calls if c[0] == "build"] == [("build", "apps")]
    assert [c[1] for c in engine.calls if c[0] == "import"] == list(COMPOSE_NAMES)
    assert done == [name for tag, aliases in COMPOSE_NAMES.items() for name in (tag, *aliases)]

    engine.calls.clear()
    assert images.ensure_app_images(engine.paths) == []
    assert [c[0] for c in engine.calls] == ["alias"] * 4  # each alias checked, nothing made


def test_ensure_app_images_reimports_from_the_cached_tarball(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _FakeEngine(monkeypatch, tmp_path, {"lab/php-fpm:1", "lab/httpd:1", "lab/varnish:1"})
    tar = images.APP_ROOTFS.tarball(engine.paths)
    tar.parent.mkdir(parents=True)
    tar.write_text("cached")
    assert images.ensure_app_images(engine.paths)[0] == "lab/php-apache:1"
    assert [c for c in engine.calls if c[0] in ("build", "import")] == [("import", "lab/php-apache:1")]


def test_image_present_compares_the_label_with_the_flavour(monkeypatch: pytest.MonkeyPatch) -> None:
    image = _by_tag()["lab/httpd:1"]
    seen: list[list[str]] = []

    def fake_run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        label = image.flavour if argv[-1] == "lab/httpd:1" else "stale"
        return subprocess.CompletedProcess(argv, 0, label + "\n", "")

    monkeypatch.setattr(images.proc, "run", fake_run)
    assert images.image_present(image)
    assert not images.image_present(dataclasses.replace(image, tag="lab/other:1"))
    assert seen[0][-3:] == ["-f", '{{index .Config.Labels "lab.image.flavour"}}', "lab/httpd:1"]


def test_mariadb_is_tagged_under_the_engines_default_database_image() -> None:
    assert docker_engine.ALIASES["lab/mariadb:3"] == (DatabaseSpec(names=("x",)).image,) == ("mariadb:10.11",)


def test_ensure_alias_tags_only_when_the_alias_names_another_image(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {"lab/mariadb:3": "sha256:aaa", "mariadb:10.11": "sha256:old"}
    tagged: list[tuple[str, ...]] = []

    def fake_run(argv: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        found = ids.get(argv[-1])
        return subprocess.CompletedProcess(argv, 0 if found else 1, (found or "") + "\n", "")

    def fake_docker(*args: str, check: bool = True, timeout: float = 120) -> str:
        tagged.append(args)
        ids[args[2]] = ids[args[1]]
        return ""

    monkeypatch.setattr(docker_engine.proc, "run", fake_run)
    monkeypatch.setattr(docker_engine, "docker", fake_docker)
    assert docker_engine.ensure_alias("lab/mariadb:3", "mariadb:10.11")
    assert tagged == [("tag", "lab/mariadb:3", "mariadb:10.11")]
    assert not docker_engine.ensure_alias("lab/mariadb:3", "mariadb:10.11")
    assert len(tagged) == 1
    with pytest.raises(docker_engine.proc.LabError, match="lab/none:1 is missing"):
        docker_engine.ensure_alias("lab/none:1", "none:1")
