# The example roles base + web for `puppet apply`, as an operator would
# write them. Templates are pre-rendered by the bench (tend's own output,
# copied to /srv/bench/files), so puppet only copies them.
package { ['less', 'procps', 'nginx']: ensure => installed }
group { 'admins': ensure => present, system => true }
user { 'ops':
  ensure     => present,
  groups     => ['admins'],
  shell      => '/bin/bash',
  home       => '/home/ops',
  managehome => true,
  require    => Group['admins'],
}
File { owner => 'root', group => 'root', mode => '0644' }
file { '/etc/motd': source => '/srv/bench/files/etc_motd' }
file { '/etc/tend': ensure => directory, mode => '0755' }
file { '/etc/tend/host.yaml': source => '/srv/bench/files/etc_tend_host.yaml' }
file { '/etc/sysctl.d/60-tend-base.conf':
  source  => '/srv/bench/files/etc_sysctl.d_60-tend-base.conf',
  require => Package['procps'],
}
file { '/etc/nginx/nginx.conf':
  source  => '/srv/bench/files/etc_nginx_nginx.conf',
  require => Package['nginx'],
  notify  => Service['nginx'],
}
file { '/etc/nginx/sites-available/photos':
  source  => '/srv/bench/files/etc_nginx_sites-available_photos',
  require => Package['nginx'],
  notify  => Service['nginx'],
}
file { '/etc/nginx/sites-enabled/photos':
  ensure  => link,
  target  => '../sites-available/photos',
  require => Package['nginx'],
  notify  => Service['nginx'],
}
file { '/etc/nginx/sites-enabled/default':
  ensure  => absent,
  require => Package['nginx'],
  notify  => Service['nginx'],
}
file { '/srv/photos': ensure => directory, mode => '0755', group => 'www-data' }
file { '/srv/photos/index.html': source => '/srv/bench/files/srv_photos_index.html' }
file { '/srv/photos/robots.txt': source => '/srv/bench/files/srv_photos_robots.txt' }
service { 'nginx': ensure => running, enable => true }
