CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE products (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(100) NOT NULL,
  price_cents INT NOT NULL,
  stock INT NOT NULL DEFAULT 0
);
INSERT INTO products (name, price_cents, stock) VALUES
  ('Heimtrikot 2026', 6995, 40), ('Fanschal', 1495, 120), ('Kaffeetasse', 995, 60);
CREATE TABLE orders (
  id INT PRIMARY KEY AUTO_INCREMENT,
  product_id INT NOT NULL,
  quantity INT NOT NULL,
  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO orders (product_id, quantity) VALUES (1, 2), (2, 1);
