<?php
// Installs the lab's WordPress (lab/apps.py), as `wp core install` would, without the network:
// run as www-data with php-cli inside the old host's mount namespace, the script on stdin after a
// first block that sets $lab_admin_password. Then: settings, one post with an uploaded image (the
// file is in wp-content/uploads already; here its attachment row and sizes), comments open.
$_SERVER['HTTP_HOST'] = 'blog.club.test';
$_SERVER['SERVER_NAME'] = 'blog.club.test';
$_SERVER['HTTPS'] = 'on';
$_SERVER['REQUEST_URI'] = '/';
define( 'WP_INSTALLING', true );

// no mail from the install (pluggable functions, defined before WordPress defines its own)
function wp_mail( $to, $subject, $message, $headers = '', $attachments = array() ) {
	return true;
}
function wp_new_blog_notification( $blog_title, $blog_url, $user_id, $password ) {
}

require '/var/www/blog/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/image.php';

if ( is_blog_installed() ) {
	fwrite( STDERR, "WordPress is installed already\n" );
	exit( 1 );
}
$result = wp_install( 'Vereinsblog FC Lab', 'vorstand', 'vorstand@club.test', true, '', $lab_admin_password );
wp_set_current_user( $result['user_id'] );

$url = 'https://blog.club.test';
foreach ( array(
	'siteurl'                     => $url,
	'home'                        => $url,
	'blogdescription'             => 'Neues vom FC Lab',
	'timezone_string'             => 'Europe/Berlin',
	'date_format'                 => 'j. F Y',
	'comment_moderation'          => 0,
	'comment_previously_approved' => 0,
	'comments_notify'             => 0,
	'moderation_notify'           => 0,
	'close_comments_for_old_posts' => 0,
	'default_pingback_flag'       => 0,
	'default_ping_status'         => 'closed',
	'ping_sites'                  => '',
	'uploads_use_yearmonth_folders' => 1,
) as $name => $value ) {
	update_option( $name, $value );
}

$date = '2024-05-04 10:00:00';
$post_id = wp_insert_post(
	array(
		'post_title'     => 'Saisonauftakt beim FC Lab',
		'post_name'      => 'saisonauftakt',
		'post_status'    => 'publish',
		'post_author'    => $result['user_id'],
		'post_date'      => $date,
		'comment_status' => 'open',
		'ping_status'    => 'closed',
		'post_content'   => '',
	),
	true
);
if ( is_wp_error( $post_id ) ) {
	fwrite( STDERR, $post_id->get_error_message() . "\n" );
	exit( 1 );
}

$file = WP_CONTENT_DIR . '/uploads/2024/05/vereinsheim.png';
$image = wp_insert_attachment(
	array(
		'post_mime_type' => 'image/png',
		'post_title'     => 'Vereinsheim',
		'post_status'    => 'inherit',
		'post_date'      => $date,
		'guid'           => $url . '/wp-content/uploads/2024/05/vereinsheim.png',
	),
	$file,
	$post_id,
	true
);
if ( is_wp_error( $image ) ) {
	fwrite( STDERR, $image->get_error_message() . "\n" );
	exit( 1 );
}
wp_update_attachment_metadata( $image, wp_generate_attachment_metadata( $image, $file ) );
set_post_thumbnail( $post_id, $image );
$src = wp_get_attachment_url( $image );
wp_update_post(
	array(
		'ID'           => $post_id,
		'post_content' => "<!-- wp:paragraph -->\n<p>Die neue Saison beginnt: Training ab Dienstag, das erste Heimspiel am Samstag. Kommentare sind willkommen.</p>\n<!-- /wp:paragraph -->\n\n"
			. "<!-- wp:image {\"id\":$image,\"sizeSlug\":\"full\"} -->\n<figure class=\"wp-block-image size-full\"><img src=\"$src\" alt=\"Das Vereinsheim\" class=\"wp-image-$image\"/></figure>\n<!-- /wp:image -->",
	)
);
echo json_encode( array( 'post' => $post_id, 'image' => $image, 'src' => $src ) ), "\n";
